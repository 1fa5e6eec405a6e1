//! The pool's connector ([`RedisConnector`]): where connections go (the one configured
//! Redis or the master the sentinels name), each opened with timeouts, and dropped once
//! it met `READONLY` or failed.

use super::pipelining::HeldStores;
use super::sentinel;
use super::store::is_replica_answer;
use std::sync::Arc;
use std::time::Duration;

/// A client for `info`; with TLS and a CA (`--redis-ca-file`), one that trusts that CA.
pub(super) fn client(
    info: impl redis::IntoConnectionInfo,
    tls: bool,
    root_cert: Option<&[u8]>,
) -> redis::RedisResult<redis::Client> {
    match root_cert {
        Some(root_cert) if tls => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert.to_vec()),
            },
        ),
        _ => redis::Client::open(info),
    }
}

/// A connection with connect, read and write timeouts, which the redis crate's own r2d2
/// support does not set: a hung Redis must fail a pass, not stall it.
pub(super) fn open(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Where connections go: the one configured Redis, or the master the sentinels name.
#[derive(Clone)]
pub(super) enum Target {
    Direct(Box<redis::Client>),
    Sentinel(Arc<sentinel::Sentinels>),
}

/// Makes the pool's connections ([`open`]).
pub(super) struct RedisConnector {
    pub(super) target: Target,
    pub(super) timeout: Duration,
}

/// A pooled connection, and what the pool must know of it.
pub(super) struct StateConnection {
    pub(super) redis: redis::Connection,
    /// Set on a READONLY answer (a replica: a demoted master after a failover), so the
    /// pool drops the connection and the next one asks the sentinels again.
    pub(super) unusable: bool,
    /// Stores not sent yet. A store is due once its documents are confirmed, but
    /// nothing waits for it: it goes out in the same write as the next command on the
    /// connection (an agent's load, usually), whose replies follow its own, or at the
    /// end of the pass. That saves each agent a write, a wait and a wake-up of Redis
    /// (docs/state.md); an interval whose store a crash keeps from leaving is sent again
    /// by the next pass from its write-ahead, under the same message id.
    pub(super) held: Option<HeldStores>,
}

/// Why a connection is of no further use.
pub(super) enum UnusableConnection {
    /// A replica answered (a failover): nothing it was sent was done.
    Replica,
    /// The connection failed (lost, timed out) with what it was sent possibly done.
    Failed(redis::RedisError),
}

impl StateConnection {
    pub(super) fn note_failure(&mut self, error: &redis::RedisError) {
        if is_replica_answer(error) {
            self.unusable = true;
        }
    }
}

impl r2d2::ManageConnection for RedisConnector {
    type Connection = StateConnection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<StateConnection, redis::RedisError> {
        let redis = match &self.target {
            Target::Direct(client) => open(client, self.timeout)?,
            Target::Sentinel(sentinels) => sentinels.connect(self.timeout)?,
        };
        Ok(StateConnection {
            redis,
            unusable: false,
            held: None,
        })
    }

    fn is_valid(&self, conn: &mut StateConnection) -> Result<(), redis::RedisError> {
        redis::cmd("PING")
            .query::<String>(&mut conn.redis)
            .map(drop)
    }

    fn has_broken(&self, conn: &mut StateConnection) -> bool {
        conn.unusable || !redis::ConnectionLike::is_open(&conn.redis)
    }
}
