//! Everything that talks to Mesos over HTTP: `client` finds the leading master and
//! fetches one agent's `/monitor/statistics`; `agents` reads the master's agent list.

mod agents;
pub(crate) mod budget;
mod client;

pub(crate) use agents::{of_shard, Agent, Unusable};
pub(crate) use client::{basic_authorization, MesosClient, Scheme};
