//! `sentinel_reply`: a Redis Sentinel's or a named node's reply (`state/sentinel_reply.rs`),
//! any bytes, first read as RESP by the redis crate as a connection reads them.

use crate::state::sentinel_reply::{named_master, says_master};
use redis::Value;

/// Read or refused with a reason; a named master has a host and a port of 1-65535; only
/// a nil reply names none.
pub fn sentinel_reply(bytes: &[u8]) {
    let Ok(reply) = redis::parse_redis_value(bytes) else {
        return;
    };
    match named_master(&reply) {
        Ok(Some((host, port))) => assert!(!host.is_empty() && port > 0),
        Ok(None) => assert!(matches!(reply, Value::Nil), "no master without a nil"),
        Err(why) => assert!(!why.is_empty(), "a refusal without a reason"),
    }
    let _ = says_master(&reply);
}
