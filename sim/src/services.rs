//! What healthy masters and agents answer: the leader's agent listing, a standby's
//! redirect to the leader, and an agent's resource statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::body;
use crate::http::{Request, Response};
use crate::server::Service;
use crate::workload::Workload;

pub(crate) const STATISTICS_PATH: &str = "/monitor/statistics";
pub(crate) const SLAVES_PATH: &str = "/master/slaves";

/// The current time in float seconds since the UNIX epoch, as Mesos timestamps are.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An agent's `/monitor/statistics`. Anything else, including the
/// `/monitor/statistics.json` alias Mesos 1.8 removed, is 404.
pub(crate) struct AgentService {
    pub index: usize,
    pub workload: Arc<Workload>,
    /// Counts statistics bodies served; churning tasks take their ids from it.
    pub generation: AtomicU64,
}

impl Service for AgentService {
    fn respond(&self, request: &Request) -> Response {
        if request.path != STATISTICS_PATH {
            return Response::text(404);
        }
        // Starts at 1 so churned ids never equal the stable (generation 0) form.
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let body = body::statistics(&self.workload, self.index, generation, now_secs());
        Response::json(200, body)
    }
}

/// A master's `/master/slaves`.
pub(crate) enum MasterService {
    /// The leading master answers with the listing, fixed when the cluster starts.
    Leader { listing: String },
    /// A standby redirects to the leader with a protocol-relative `Location`, as Mesos
    /// does, leaving the scheme to the client.
    Standby { location: String },
}

impl Service for MasterService {
    fn respond(&self, request: &Request) -> Response {
        if request.path != SLAVES_PATH {
            return Response::text(404);
        }
        match self {
            MasterService::Leader { listing } => Response::json(200, listing.clone()),
            MasterService::Standby { location } => Response::redirect(location.clone()),
        }
    }
}
