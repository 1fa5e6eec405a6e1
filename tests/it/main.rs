//! The integration tests, one binary (as ripgrep's `tests/tests.rs`): one build and one
//! link instead of one per topic. Each module below is a topic; run one with `cargo test
//! --test it TOPIC::` (e.g. `cargo test --test it state::`), all but the deployment checks
//! with `cargo test --test it -- --skip deploy::`. Every test starts servers of its own
//! (`common`), so the modules share nothing but the machine and run in parallel.
//!
//! No module has to run alone: the memory tests read the peak RSS of the collector they
//! started (its /proc status), not of this process, and the only process-wide state is
//! `common`'s set of ports handed out, which is better shared.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test crate: its helpers, like its tests, fail by panicking with a message"
)]

// The harness: servers, brokers, the collector runner and assertions, one file per role.
mod common;

// Who may name whom in `src/`, read off its `crate::` paths (ARCHITECTURE.md's invariants).
mod architecture;
// The broker's edges: ids over a short string, returns, settings AMQP cannot carry, alarms.
mod broker_limits;
// One collection pass end to end against a simulated cluster, Redis and RabbitMQ.
mod collect;
// Confirms, returns, a broker or Redis failing before or during a pass, the pass lock.
mod delivery;
// Any exchange and a routing key per document: topic, consistent-hash, none that routes.
mod exchange;
// What operators install, checked with the real tools (needs `scripts/package`'s outputs).
mod deploy;
// The repository about itself: cited `docs/` pages exist, `rust-version` matches the lock.
mod docs;
// Smoke tests of `common` itself.
mod harness;
// Agents answering broken or hostile HTTP: each refused by a bound, with its reason.
mod hostile_agents;
// Bad answers, entries and state never break a pass; numbers keep every digit.
mod input;
// Log lines bounded per pass and counted per reason; setting errors as one line.
mod logs;
// The body budget: peak RSS follows `--body-budget-bytes`, not the number of agents.
mod memory;
// Masters in high availability, authentication, TLS, misbehaving agents, the deadline.
mod mesos;
// The metrics file, the Pushgateway and the alert rules, checked by promtool.
mod metrics;
// The man page, `check`, the dry run, JSON logs, README against `--help`.
mod operate;
// No secret in any output, redirects that never downgrade, TLS brokers, broker lists.
mod secure;
// Redis Sentinel: failovers between and during passes, replicas answering READONLY.
mod sentinel;
// `--shard K/N`: every document exactly once across shards, a lock per shard.
mod shard;
// SIGTERM and SIGINT during a pass: what is settled is stored, the lock released.
mod signals;
// The readings' layout in Redis and the outbox: every interval exactly once.
mod state;
// Every Mesos version and address family; documents held back when incomplete.
mod versions;
