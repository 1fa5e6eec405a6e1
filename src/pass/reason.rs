//! Why an agent failed or a document was not delivered: one enum, [`Reason`], whose
//! stable label (`as_str`) is what the log lines' `reason` field, the summary line's
//! `failed` and `deliveries_failed` counts and the metrics' `reason` label say. The
//! labels are part of what operators alert on, so they are written here once and never
//! derived from an error's message.

use crate::broker::DeliveryError;
use crate::mesos::FetchError;

/// A reason for a failed agent or a failed delivery. Ordered by label, so the summary
/// line lists its counts in the order it always has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reason {
    /// The agent refused the connection.
    Refused,
    /// The agent did not answer in time.
    Timeout,
    /// The agent refused the credentials (HTTP 401 or 403).
    Unauthorized,
    /// The agent answered with another non-2xx status.
    HttpStatus,
    /// The agent's answer was over `--max-body-bytes`.
    TooLarge,
    /// The agent's answer was cut short.
    Truncated,
    /// The agent's answer was not a statistics array.
    BadAnswer,
    /// Any other connection failure (a name that does not resolve, a TLS failure).
    Connection,
    /// Redis failed while loading the agent's previous readings.
    Redis,
    /// No queue is bound to the routing key: the broker returned the document.
    Unroutable,
    /// The broker rejected the document (nack).
    Nacked,
    /// No confirm within `--confirm-timeout`.
    Unconfirmed,
    /// The broker connection broke before the confirm.
    ConnectionLost,
    /// The broker blocked publishing past `--blocked-timeout`.
    Blocked,
    /// The document could not be framed for AMQP.
    Unencodable,
    /// No outcome came from the broker.
    Unknown,
}

impl Reason {
    /// The label in logs, the summary line and the metrics; never changes for a reason.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
            Reason::Unauthorized => "unauthorized",
            Reason::HttpStatus => "http-status",
            Reason::TooLarge => "too-large",
            Reason::Truncated => "truncated",
            Reason::BadAnswer => "bad-answer",
            Reason::Connection => "connection",
            Reason::Redis => "redis",
            Reason::Unroutable => "unroutable",
            Reason::Nacked => "nacked",
            Reason::Unconfirmed => "unconfirmed",
            Reason::ConnectionLost => "connection-lost",
            Reason::Blocked => "blocked",
            Reason::Unencodable => "unencodable",
            Reason::Unknown => "unknown",
        }
    }
}

impl Ord for Reason {
    fn cmp(&self, other: &Reason) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Reason {
    fn partial_cmp(&self, other: &Reason) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&FetchError> for Reason {
    fn from(error: &FetchError) -> Reason {
        match error {
            FetchError::Refused => Reason::Refused,
            // Waiting for the body budget in vain is a timeout, whatever it waited behind.
            FetchError::Timeout | FetchError::BudgetHeld => Reason::Timeout,
            FetchError::Unauthorized(_) => Reason::Unauthorized,
            FetchError::Status(_) | FetchError::NoLeader => Reason::HttpStatus,
            FetchError::TooLarge(_) | FetchError::ListTooLarge(_) => Reason::TooLarge,
            FetchError::Truncated(_) => Reason::Truncated,
            FetchError::BadRedirect(_) | FetchError::UnreadableList(_) | FetchError::BadHttp(_) => {
                Reason::BadAnswer
            }
            FetchError::Connection(_) => Reason::Connection,
        }
    }
}

impl From<&DeliveryError> for Reason {
    fn from(error: &DeliveryError) -> Reason {
        match error {
            DeliveryError::Unroutable(..) => Reason::Unroutable,
            DeliveryError::Nacked => Reason::Nacked,
            DeliveryError::Unconfirmed(_) => Reason::Unconfirmed,
            DeliveryError::ConnectionLost(_) => Reason::ConnectionLost,
            DeliveryError::Blocked(..) => Reason::Blocked,
            DeliveryError::Unencodable(_) => Reason::Unencodable,
            DeliveryError::Unknown => Reason::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels operators alert on stay what they were when they were loose strings.
    #[test]
    fn labels_are_stable() {
        assert_eq!(Reason::from(&FetchError::Refused).as_str(), "refused");
        assert_eq!(Reason::from(&FetchError::NoLeader).as_str(), "http-status");
        assert_eq!(
            Reason::from(&DeliveryError::ConnectionLost("x".into())).as_str(),
            "connection-lost"
        );
        assert_eq!(Reason::Redis.to_string(), "redis");
        let mut reasons = [Reason::Truncated, Reason::BadAnswer, Reason::Refused];
        reasons.sort();
        assert_eq!(
            reasons,
            [Reason::BadAnswer, Reason::Refused, Reason::Truncated],
            "by label"
        );
    }
}
