//! The integration tests' harness (`use crate::common::*;` in each module of `tests/it/`),
//! one file per role.
//!
//! Every test gets its own redis-server, its own queue names and its own Redis key prefix, so
//! tests run in parallel without seeing each other. RabbitMQ is one shared, project-private node
//! (`scripts/services ensure`, port 5673) plus disposable private nodes for fault tests.
//!
//! Nothing here but world.rs depends on the `mesos-sim` API: clusters are passed in as plain
//! master URLs (see `World` in world.rs for the glue).
#![allow(dead_code)]

// Ports, unique names, scratch folders, waiting, `scripts/services`.
mod basics;
// A redis-server of one test's own.
mod redis_server;
// Redis under Sentinel: a master, a replica and three sentinels of one test's own.
mod sentinel;
// RabbitMQ nodes: the shared one and private ones (stopped, restarted, alarmed, TLS).
mod brokers;
// TLS certificates made for one test.
mod certificates;
// The tests' own AMQP client (lapin): declare, publish, drain and count queues.
mod lapin_reader;
// A broker reached over IPv6 through a forwarder.
mod ipv6_forwarder;
// The collector binary: a run, a running process, its environment, its `--help`.
mod collector;
// Assertions over runs and documents: counts, secrets, intervals that tile time.
mod assertions;
// A Prometheus Pushgateway of one test's own, and a server that never answers.
mod pushgateway;
// `World` (the lead's): cluster + Redis + queue + prefix in one value; the only part of the
// harness that uses the mesos-sim API.
mod world;

pub use assertions::*;
pub use basics::*;
pub use brokers::*;
pub use certificates::*;
pub use collector::*;
pub use ipv6_forwarder::*;
pub use lapin_reader::*;
pub use pushgateway::*;
pub use redis_server::*;
pub use sentinel::*;
#[allow(unused_imports)] // not every test module uses it
pub use world::*;
