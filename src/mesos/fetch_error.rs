//! Why one HTTP request to a master or agent failed, whichever client made it (ureq over
//! TLS in `client.rs`, or the plain HTTP of `plain.rs`), and what an I/O error means.

/// Why one HTTP request to a master or agent failed; the pass labels each variant for
/// its summary and metrics.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("connection refused")]
    Refused,
    #[error("timed out")]
    Timeout,
    #[error("authentication failed (HTTP {0}): check STATS_COLLECTOR_MESOS_PRINCIPAL/_SECRET")]
    Unauthorized(u16),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("no leading master (HTTP 503)")]
    NoLeader,
    #[error("answer larger than {0} bytes")]
    TooLarge(u64),
    /// An answer without a length could not grow its share of the body budget: every
    /// other answer holding some waits to grow as well (`budget.rs`).
    #[error("the body budget is held by answers without a length, each waiting for more (see --body-budget-bytes)")]
    BudgetHeld,
    #[error("answered an unreadable agent list: {0}")]
    UnreadableList(String),
    #[error("answered an agent list larger than {0} bytes (see --max-agent-list-bytes)")]
    ListTooLarge(u64),
    #[error("answer cut short: {0}")]
    Truncated(String),
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    /// An answer that is not HTTP as RFC 9112 frames it (a bad head, length or chunk),
    /// or whose framing passed its bounds: refused, whatever the body held.
    #[error("{0}")]
    BadHttp(String),
    #[error("{0}")]
    Connection(String),
}

impl FetchError {
    /// What a failed read, write or connect means to an operator.
    pub(crate) fn from_io(error: std::io::Error) -> FetchError {
        match error.kind() {
            std::io::ErrorKind::ConnectionRefused => FetchError::Refused,
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => FetchError::Timeout,
            std::io::ErrorKind::UnexpectedEof => FetchError::Truncated(error.to_string()),
            _ => FetchError::Connection(error.to_string()),
        }
    }

    /// The master answered, but with an agent list that could not be used.
    pub(super) fn is_unreadable_list(&self) -> bool {
        matches!(
            self,
            FetchError::UnreadableList(_) | FetchError::ListTooLarge(_)
        )
    }
}
