//! JSON bodies: an agent's `/monitor/statistics` array and the leader's `/master/slaves`
//! listing.
//!
//! Written straight into one preallocated String rather than through serde_json values,
//! because the benchmark's agents serve hundreds of thousands of entries on the cores the
//! measured collector also needs. Every string written here is known to need no escaping.

use std::fmt::Write;
use std::net::SocketAddr;

use crate::ids;
use crate::workload::Workload;

/// A generous upper bound of one statistics entry, so the body String never regrows.
const ENTRY_BYTES: usize = 900;
const LISTED_AGENT_BYTES: usize = 300;

/// An agent as the leader lists it.
pub(crate) struct ListedAgent {
    pub id: String,
    pub addr: SocketAddr,
    pub active: bool,
    pub registered_time: f64,
}

/// The `/monitor/statistics` array of `agent`, sampled at `now`; churning tasks get the
/// ids of `generation`.
pub(crate) fn statistics(work: &Workload, agent: usize, generation: u64, now: f64) -> String {
    let mut out = String::with_capacity(2 + work.tasks_per_agent * ENTRY_BYTES);
    let mut id = String::with_capacity(96);
    out.push('[');
    for task in 0..work.tasks_per_agent {
        if task > 0 {
            out.push(',');
        }
        id.clear();
        let id_generation = if work.churns(task) { generation } else { 0 };
        ids::push_executor_id(&mut id, &work.group_prefix, agent, task, id_generation);
        push_entry(&mut out, work, task, &id, now);
    }
    out.push(']');
    out
}

fn push_entry(out: &mut String, work: &Workload, task: usize, id: &str, now: f64) {
    out.push_str("{\"executor_id\":\"");
    out.push_str(id);
    out.push_str("\",\"executor_name\":\"Command Executor (Task: ");
    out.push_str(id);
    out.push_str(") (Command: sh -c 'exec ./");
    out.push_str(ids::app_name(task));
    out.push_str(" --port $PORT0')\",\"framework_id\":\"");
    out.push_str(&work.framework_id);
    out.push_str("\",\"source\":\"");
    out.push_str(id);
    out.push_str("\",\"statistics\":{\"timestamp\":");
    push_f64(out, now);
    push_counters(out, work, task, now);
    out.push_str("}}");
}

fn push_counters(out: &mut String, work: &Workload, task: usize, now: f64) {
    let rates = work.rates(task);
    let sample = work.sample(task, now);
    push_f64_field(out, "cpus_limit", rates.cpus_limit);
    push_f64_field(out, "cpus_user_time_secs", sample.user);
    push_f64_field(out, "cpus_system_time_secs", sample.system);
    if let Some(cfs) = sample.cfs {
        push_f64_field(out, "cpus_throttled_time_secs", cfs.throttled_secs);
        push_u64_field(out, "cpus_nr_periods", cfs.periods);
        push_u64_field(out, "cpus_nr_throttled", cfs.throttled_periods);
    }
    let rss = rates.mem_rss_bytes;
    let file = (rss / 4) & !4095;
    push_u64_field(out, "mem_limit_bytes", rates.mem_limit_bytes);
    push_u64_field(out, "mem_rss_bytes", rss);
    push_u64_field(out, "mem_anon_bytes", rss);
    push_u64_field(out, "mem_file_bytes", file);
    push_u64_field(out, "mem_mapped_file_bytes", (file / 8) & !4095);
}

/// The `/master/slaves` body listing `agents`.
pub(crate) fn master_slaves(agents: &[ListedAgent]) -> String {
    let mut out = String::with_capacity(64 + agents.len() * LISTED_AGENT_BYTES);
    out.push_str("{\"slaves\":[");
    for (i, agent) in agents.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_listed_agent(&mut out, agent);
    }
    out.push_str("],\"recovered_slaves\":[]}");
    out
}

fn push_listed_agent(out: &mut String, agent: &ListedAgent) {
    let (ip, port) = (agent.addr.ip(), agent.addr.port());
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{{\"id\":\"{}\",\"hostname\":\"{ip}\",\"port\":{port},\"pid\":\"slave(1)@{ip}:{port}\",\"active\":{},\"registered_time\":",
        agent.id, agent.active
    );
    push_f64(out, agent.registered_time);
    out.push_str(",\"attributes\":{}}");
}

fn push_f64_field(out: &mut String, name: &str, value: f64) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    push_f64(out, value);
}

fn push_u64_field(out: &mut String, name: &str, value: u64) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

/// Appends a finite f64 in its shortest round-trip form, always with a decimal point so
/// it reads as a JSON double the way Mesos writes them.
fn push_f64(out: &mut String, value: f64) {
    let start = out.len();
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
    if !out[start..].contains('.') {
        out.push_str(".0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(tasks: usize) -> Workload {
        Workload {
            tasks_per_agent: tasks,
            no_cfs_every: 2,
            churn_every: 0,
            framework_id: String::from("fw-0000"),
            group_prefix: String::new(),
            start: 1_764_075_000.0,
        }
    }

    #[test]
    fn statistics_is_a_json_array_of_executors() {
        let body = statistics(&workload(4), 0, 1, 1_764_075_010.25);
        let value: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        let entries = value.as_array().expect("an array");
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0]["executor_id"], entries[0]["source"]);
        assert_eq!(entries[0]["statistics"]["timestamp"], 1_764_075_010.25);
        assert!(entries[1]["statistics"]
            .get("cpus_throttled_time_secs")
            .is_none());
        assert!(body.len() < 4 * ENTRY_BYTES);
    }

    #[test]
    fn empty_agents_serve_an_empty_array() {
        assert_eq!(statistics(&workload(0), 0, 1, 1.0), "[]");
    }

    #[test]
    fn floats_keep_a_decimal_point_and_round_trip() {
        let mut out = String::new();
        push_f64(&mut out, 12.0);
        out.push(' ');
        push_f64(&mut out, 1_764_075_000.123_456_7);
        assert_eq!(out, "12.0 1764075000.1234567");
    }
}
