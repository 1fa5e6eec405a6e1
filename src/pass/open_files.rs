//! The process's open-files limit. A fetch in flight holds a socket, and when many agents
//! hang the pool keeps far more fetches in flight than `--workers`; cron often starts
//! jobs with a soft limit of 1024, and running out would fail healthy agents and Redis
//! connections with "too many open files". So a pass raises the soft limit to the hard
//! one, and the pool adds threads for stalled fetches only as far as the limit leaves
//! room for.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept for everything but fetches and Redis connections: stdio, the broker
/// connection, the master, the CA and log files, and slack.
const RESERVED: u64 = 64;

/// Raises the soft limit to the hard one when it is lower; returns the soft limit now in
/// force (None: unlimited).
pub(crate) fn raise_to_hard_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return limit.maximum,
            Err(e) => log::debug!("cannot raise the open-files limit to the hard limit: {e}"),
        }
    }
    limit.current
}

/// How many stalled fetches fit under `limit` beside one socket per worker and the Redis
/// connections.
pub(crate) fn room_for_stalled_fetches(
    limit: Option<u64>,
    workers: usize,
    redis_connections: u32,
) -> usize {
    let Some(limit) = limit else {
        return usize::MAX;
    };
    let taken = RESERVED + workers as u64 + u64::from(redis_connections);
    usize::try_from(limit.saturating_sub(taken)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_what_the_limit_leaves_beside_workers_and_redis() {
        assert_eq!(
            room_for_stalled_fetches(Some(1024), 32, 10),
            1024 - 64 - 32 - 10
        );
        assert_eq!(room_for_stalled_fetches(Some(100), 32, 10), 0);
        assert_eq!(room_for_stalled_fetches(None, 32, 10), usize::MAX);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = raise_to_hard_limit();
        assert_eq!(now, getrlimit(Resource::Nofile).maximum);
    }
}
