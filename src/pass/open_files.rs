//! The process's open-files limit. A fetch in flight holds a socket, and when many agents
//! hang the pool keeps far more fetches in flight than `--workers`; cron often starts
//! jobs with a soft limit of 1024, and running out would fail healthy agents and Redis
//! connections with "too many open files". So a pass raises the soft limit to the hard
//! one (`process.rs`), and the pool adds threads for stalled fetches only as far as the
//! limit leaves room for.

/// Descriptors kept for everything but fetches and Redis connections: stdio, the broker
/// connection, the master, the CA and log files, and slack.
const RESERVED: u64 = 64;

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
}
