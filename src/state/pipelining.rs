//! The pipelining of stores: a store waits on its connection ([`HeldStores`]) and leaves
//! in one write with the connection's next command, whose sender reads the stores'
//! replies first; the stores that failed are kept for the pass to report
//! ([`StateStore::settle_stores`]).

use super::connector::{StateConnection, UnusableConnection};
use super::layout;
use super::store::{describe, StateError, StateStore};
use std::sync::PoisonError;

/// Whose readings a store writes: named in the report if its replies say it failed.
#[derive(Debug)]
pub(crate) struct StoreOwner {
    /// The agent's address, as the pass's log lines name agents.
    pub(crate) agent: String,
    pub(crate) tasks: usize,
}

/// A store found to have failed when its replies were read.
#[derive(Debug)]
pub(crate) struct FailedStore {
    pub(crate) owner: StoreOwner,
    pub(crate) error: StateError,
}

/// Stores held by a connection: their commands, one after the other, and whose
/// readings each writes.
#[derive(Default)]
pub(super) struct HeldStores {
    pub(super) commands: Vec<u8>,
    pub(super) owners: Vec<StoreOwner>,
}

impl StateStore {
    /// Sends the stores `conn` held, followed by `then`, in one write, and reads the
    /// stores' replies, keeping each failure for the pass to report. An error when the
    /// connection is of no further use.
    pub(super) fn send_held(
        &self,
        conn: &mut StateConnection,
        then: &[u8],
    ) -> Result<(), UnusableConnection> {
        let held = conn.held.take();
        let sent = match &held {
            Some(held) if !then.is_empty() => {
                let mut both = Vec::with_capacity(held.commands.len() + then.len());
                both.extend_from_slice(&held.commands);
                both.extend_from_slice(then);
                conn.redis.send_packed_command(&both)
            }
            Some(held) => conn.redis.send_packed_command(&held.commands),
            None if then.is_empty() => return Ok(()),
            None => conn.redis.send_packed_command(then),
        };
        if let Err(e) = sent {
            // Part of it may be on the wire: the connection is not reused.
            conn.unusable = true;
            if let Some(held) = held {
                self.fail_stores(held.owners, &e);
            }
            return Err(UnusableConnection::Failed(e));
        }
        match held {
            Some(held) => self.read_store_replies(conn, held.owners),
            None => Ok(()),
        }
    }

    /// Reads the replies of each store sent; every reply is read, even after an error
    /// Redis answered, so the next command reads its own; after a lost connection or a
    /// timeout none is waited for again, and the pool drops the connection.
    fn read_store_replies(
        &self,
        conn: &mut StateConnection,
        owners: Vec<StoreOwner>,
    ) -> Result<(), UnusableConnection> {
        let mut owners = owners.into_iter();
        while let Some(owner) = owners.next() {
            let mut failure = None;
            for _ in 0..layout::STORE_REPLIES {
                let error = match conn.redis.recv_response() {
                    Ok(redis::Value::ServerError(e)) => redis::RedisError::from(e),
                    Ok(_) => continue,
                    Err(e) => {
                        conn.unusable = true;
                        self.fail_stores(std::iter::once(owner).chain(owners), &e);
                        return Err(UnusableConnection::Failed(e));
                    }
                };
                conn.note_failure(&error);
                failure.get_or_insert(error);
            }
            if let Some(e) = failure {
                self.fail_stores([owner], &e);
            }
        }
        if conn.unusable {
            Err(UnusableConnection::Replica)
        } else {
            Ok(())
        }
    }

    fn fail_stores(&self, owners: impl IntoIterator<Item = StoreOwner>, e: &redis::RedisError) {
        let mut failed = self
            .failed_stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failed.extend(owners.into_iter().map(|owner| FailedStore {
            owner,
            error: self.error(format!("store: {}", describe(e))),
        }));
    }

    /// Sends the stores every idle connection still holds and reads their replies, and
    /// returns the stores that failed since the last call. The pass calls it once its
    /// workers are done, before its summary.
    pub(crate) fn settle_stores(&self) -> Vec<FailedStore> {
        let mut settled = Vec::new();
        while let Some(mut conn) = self.pool.try_get() {
            let _ = self.send_held(&mut conn, &[]);
            settled.push(conn);
        }
        drop(settled);
        std::mem::take(
            &mut *self
                .failed_stores
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// Appends one bulk string, the concatenation of `parts`, in Redis' wire format.
pub(super) fn push_bulk(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(b'$');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_strings_are_length_prefixed_and_binary_safe() {
        let mut out = Vec::new();
        push_bulk(&mut out, &[b"asgard:", "tâche\r\n".as_bytes()]);
        push_bulk(&mut out, &[]);
        assert_eq!(out, "$15\r\nasgard:tâche\r\n\r\n$0\r\n\r\n".as_bytes());
    }
}
