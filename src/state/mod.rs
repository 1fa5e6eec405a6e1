//! Previous readings and the pass lock, kept in Redis (docs/state.md).
//!
//! The readings' layout, one key per agent, and its load and store round trips are in
//! `layout`; nothing ever scans the keyspace. The pass lock ([`PassLock`]) is
//! `SET <prefix>lock NX PX` and is released only by its owner (compare-and-delete). With
//! a Sentinel URL, connections go to the master the sentinels name (`sentinel.rs`).
//!
//! One file per role: `store` (the pool, a command, errors in words), `pipelining` (stores
//! held by a connection and sent with its next command), `lock` (the pass lock),
//! `connector` (how the pool opens a connection), `sentinel` (the master the sentinels
//! name) and `sentinel_reply` (their replies read), `layout` (the keys and their round
//! trips), `value_codec` (an entry's value in bytes), `turn` (where the next pass starts in
//! its agents' order).

mod connector;
pub(crate) mod layout;
mod lock;
mod pipelining;
mod sentinel;
pub(crate) mod sentinel_reply;
mod store;
mod turn;
pub(crate) mod value_codec;

pub(crate) use lock::{LockError, PassLock};
pub(crate) use pipelining::StoreOwner;
pub(crate) use store::{StateError, StateStore};
