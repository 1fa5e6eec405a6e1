//! The narrow interface the pass delivers documents through ([`Publisher`]), and why a
//! document was not delivered ([`DeliveryError`]).

use crate::broker::Batch;
use std::time::Duration;

/// Why a document was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DeliveryError {
    #[error("unroutable: no queue is bound to routing key {0:?} ({1})")]
    Unroutable(String, String),
    #[error("rejected by the broker (nack)")]
    Nacked,
    #[error("not confirmed within {0:?}")]
    Unconfirmed(Duration),
    #[error("broker connection lost: {0}")]
    ConnectionLost(String),
    #[error("the broker blocked publishing for over {1:?}: {0}")]
    Blocked(String, Duration),
    #[error("cannot be sent: {0}")]
    Unencodable(String),
    #[error("no outcome came from the broker")]
    Unknown,
}

/// Where documents go. The pass knows nothing else of the broker.
pub(crate) trait Publisher: Send + Sync {
    /// Sends a batch and waits until each document is settled; one result per document,
    /// in order. Ok means the broker took responsibility for it.
    fn publish_batch(&self, batch: Batch) -> Vec<Result<(), DeliveryError>>;

    /// Finishes the pass: flushes what the implementation buffered and closes it.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;

    /// Why no more documents can be delivered this pass (the broker blocked publishing
    /// too long), so the pass starts no more agents; None while delivery goes on.
    fn halted(&self) -> Option<String> {
        None
    }
}
