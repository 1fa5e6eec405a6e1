//! [`PassError`]: why a pass could not run at all, one variant per cause, each carrying
//! its exit code (`crate::exit`), so `main` never reads a code off a message and a new
//! cause cannot be added without choosing its code.

use crate::broker::NoBroker;
use crate::config::ConfigError;
use crate::exit;
use crate::mesos::NoMaster;
use crate::state::{LockError, StateError};

/// A pass that ended before collecting.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PassError {
    /// The HTTP client for masters and agents cannot be built (an unreadable CA file).
    #[error("{0:#}")]
    MesosClient(anyhow::Error),
    /// The Redis URL cannot be used.
    #[error(transparent)]
    RedisSettings(StateError),
    /// A collecting pass without a broker configured.
    #[error(transparent)]
    NoBrokerConfigured(ConfigError),
    /// The broker's TLS settings cannot be used (an unreadable CA file).
    #[error("{0}")]
    BrokerTls(String),
    /// No broker of the list accepted the connection and login.
    #[error(transparent)]
    BrokerDown(NoBroker),
    /// The lock was not taken: another pass holds it, or Redis failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// No master answered with an agent list.
    #[error(transparent)]
    NoMaster(NoMaster),
}

impl PassError {
    /// The exit code the contract gives this cause: 2 for a configuration the pass cannot
    /// use, 69 when an outside system is down, 75 when another pass holds the lock.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            PassError::MesosClient(_)
            | PassError::RedisSettings(_)
            | PassError::NoBrokerConfigured(_)
            | PassError::BrokerTls(_) => exit::USAGE,
            PassError::BrokerDown(_)
            | PassError::Lock(LockError::Redis(_))
            | PassError::NoMaster(_) => exit::UNAVAILABLE,
            PassError::Lock(LockError::Held(_)) => exit::LOCKED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_carries_its_code() {
        let held = PassError::from(LockError::Held("asgard-stats:lock".into()));
        assert_eq!(held.exit_code(), exit::LOCKED);
        assert!(held.to_string().contains("asgard-stats:lock"), "{held}");
        assert_eq!(
            PassError::BrokerTls("cannot read the CA file".into()).exit_code(),
            exit::USAGE
        );
        let ca = PassError::MesosClient(anyhow::anyhow!("cannot read the CA file"));
        assert_eq!(ca.exit_code(), exit::USAGE);
    }
}
