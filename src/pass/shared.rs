//! What every worker of a pass shares ([`Shared`]: the clients of the outside systems,
//! the tally, the settings the agent path reads), and what both the outbox and the dry
//! run's second reading do with a computed document ([`goes_out`], [`outgoing`]). Apart from `agent.rs` so
//! that the outbox, which `agent.rs` calls, needs nothing of it.

use crate::broker::{Batch, Publisher};
use crate::config::{KeyField, RoutingKey};
use crate::mesos::{Agent, MesosClient, Scheme};
use crate::pass::stop::Stop;
use crate::pass::tally::Tally;
use crate::state::StateStore;
use crate::stats::document::Document;
use crate::stats::reading::Reading;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a worker needs, shared by all of them.
pub(crate) struct Shared {
    pub(crate) mesos: MesosClient,
    pub(crate) state: Option<StateStore>,
    pub(crate) publisher: Box<dyn Publisher>,
    pub(crate) scheme: Scheme,
    pub(crate) tally: Arc<Tally>,
    pub(crate) include_raw_metrics: bool,
    pub(crate) publish_incomplete: bool,
    /// Each document's routing key (None in a dry run without a broker: no key).
    pub(crate) routing_key: Option<RoutingKey>,
    /// False in a dry run: nothing is written to Redis.
    pub(crate) store: bool,
    /// How long a task's stored entry outlives its last write.
    pub(crate) state_ttl: Duration,
    /// Whether the previous release's per-task readings may still be in Redis.
    pub(crate) legacy_reads: bool,
    pub(crate) deadline: Instant,
    /// Once requested, no further agent is started.
    pub(crate) stop: Arc<Stop>,
    /// Dry run only: keeps an agent's first readings of the tasks that had nothing to
    /// compare with, for a second reading. Handed in by the pass, so the agent path
    /// knows nothing of the dry run.
    pub(crate) remember_unusable: Option<RememberUnusable>,
}

/// Where a dry run keeps first readings that had nothing to compare with.
pub(crate) type RememberUnusable = Box<dyn Fn(&Agent, Vec<&Reading>) + Send + Sync>;

/// Whether a computed document goes out. One without `cpu_pct` or `mem_pct` is counted
/// as incomplete and held back, unless `--publish-incomplete`; a dry run still prints it,
/// marked, so the operator sees what a pass would hold back.
pub(crate) fn goes_out(shared: &Shared, doc: &mut Document) -> bool {
    if doc.is_complete() || shared.publish_incomplete {
        return true;
    }
    shared.tally.incomplete();
    doc.incomplete = !shared.store;
    doc.incomplete
}

/// Adds a document to the batch the broker takes: its message id, its routing key (a
/// pure function of the document, so one sent again goes the same way) and its JSON.
pub(crate) fn push_document(shared: &Shared, batch: &mut Batch, doc: &Document) {
    batch.push(
        |id| doc.write_message_id(id),
        |key| {
            if let Some(template) = &shared.routing_key {
                template.write(key, |field| match field {
                    KeyField::AppName => &doc.appname,
                    KeyField::TaskName => doc.taskname,
                    KeyField::Host => doc.host,
                });
            }
        },
        |body| doc.write_json(body),
    );
}
