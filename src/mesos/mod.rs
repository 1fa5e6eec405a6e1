//! Everything that talks to Mesos over HTTP: `client` finds the leading master and
//! fetches one agent's `/monitor/statistics` (through `plain` over plain HTTP, through
//! ureq over TLS); `agents` reads the master's agent list.

mod agents;
pub(crate) mod budget;
mod client;
mod fetch_error;
mod plain;

pub(crate) use agents::{of_shard, without_repeats, Agent, Unusable};
pub(crate) use client::{basic_authorization, MesosClient, NoMaster, Scheme};
pub(crate) use fetch_error::FetchError;

// What the fuzz targets (`src/fuzzing/`) read outside input with.
#[cfg(fuzzing)]
pub(crate) use agents::parse_agent_list;
#[cfg(fuzzing)]
pub(crate) use plain::read_answer;
