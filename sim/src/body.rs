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
use crate::MesosVersion;

/// A generous upper bound of one statistics entry, so the body String never regrows.
const ENTRY_BYTES: usize = 900;
/// A generous upper bound of one agent of the listing, small and real-size.
const LISTED_AGENT_BYTES: usize = 300;
const LISTED_AGENT_FULL_BYTES: usize = 2000;

/// What Mesos 1.9+ lists of an agent beside its address, as captured from a real
/// master: resources in both forms, attributes, version and capabilities. It makes an
/// entry ~1.7 KB, the size a collector must read 50,000 times over.
const AGENT_DETAILS_1_9: &str = concat!(
    r#""attributes":{"dc":"sa-east-1a","workload":"general","owner":"asgard","rack":"r12","tier":"2"},"#,
    r#""resources":{"disk":99424.0,"mem":15038.0,"gpus":0.0,"cpus":4.0,"ports":"[31000-32000]"},"#,
    r#""used_resources":{"disk":0.0,"mem":1280.0,"gpus":0.0,"cpus":1.2,"ports":"[31002-31003]"},"#,
    r#""offered_resources":{"disk":0.0,"mem":0.0,"gpus":0.0,"cpus":0.0},"#,
    r#""reserved_resources":{},"#,
    r#""unreserved_resources":{"disk":99424.0,"mem":15038.0,"gpus":0.0,"cpus":4.0,"ports":"[31000-32000]"},"#,
    r#""deactivated":false,"version":"1.9.0","reregistered_time":1764071400.524316,"#,
    r#""domain":{"fault_domain":{"region":{"name":"sa-east-1"},"zone":{"name":"sa-east-1a"}}},"#,
    r#""capabilities":["MULTI_ROLE","HIERARCHICAL_ROLE","RESERVATION_REFINEMENT","RESOURCE_PROVIDER","RESIZE_VOLUME","AGENT_OPERATION_FEEDBACK","AGENT_DRAINING"],"#,
    r#""reserved_resources_full":{},"#,
    r#""unreserved_resources_full":[{"name":"cpus","type":"SCALAR","scalar":{"value":4.0},"role":"*"},{"name":"mem","type":"SCALAR","scalar":{"value":15038.0},"role":"*"},{"name":"disk","type":"SCALAR","scalar":{"value":99424.0},"role":"*"},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]},"role":"*"}],"#,
    r#""used_resources_full":[{"name":"cpus","type":"SCALAR","scalar":{"value":1.2},"role":"*","allocation_info":{"role":"*"}},{"name":"mem","type":"SCALAR","scalar":{"value":1280.0},"role":"*","allocation_info":{"role":"*"}},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31002,"end":31003}]},"role":"*","allocation_info":{"role":"*"}}],"#,
    r#""offered_resources_full":[]"#,
);

/// An agent as the leader lists it.
#[derive(Clone)]
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
    out.push('"');
    if work.has_statistics(task) {
        out.push_str(",\"statistics\":{");
        if work.has_timestamp(task) {
            out.push_str("\"timestamp\":");
            push_f64(out, now);
        } else {
            out.push_str("\"processes\":1");
        }
        push_counters(out, work, task, now);
        out.push('}');
    }
    out.push('}');
}

fn push_counters(out: &mut String, work: &Workload, task: usize, now: f64) {
    let rates = work.rates(task);
    let sample = work.sample(task, now);
    let (hard, soft) = work.limits(task);
    if hard {
        push_f64_field(out, "cpus_limit", rates.cpus_limit);
    }
    if soft {
        push_f64_field(out, "cpus_soft_limit", rates.cpus_limit);
    }
    push_f64_field(out, "cpus_user_time_secs", sample.user);
    push_f64_field(out, "cpus_system_time_secs", sample.system);
    if let Some(cfs) = sample.cfs {
        push_f64_field(out, "cpus_throttled_time_secs", cfs.throttled_secs);
        push_u64_field(out, "cpus_nr_periods", cfs.periods);
        push_u64_field(out, "cpus_nr_throttled", cfs.throttled_periods);
    }
    let rss = rates.mem_rss_bytes;
    let file = (rss / 4) & !4095;
    if hard {
        push_u64_field(out, "mem_limit_bytes", rates.mem_limit_bytes);
    }
    if soft {
        push_u64_field(out, "mem_soft_limit_bytes", rates.mem_limit_bytes);
    }
    push_u64_field(out, "mem_rss_bytes", rss);
    push_u64_field(out, "mem_anon_bytes", rss);
    push_u64_field(out, "mem_file_bytes", file);
    push_u64_field(out, "mem_mapped_file_bytes", (file / 8) & !4095);
}

/// The `/master/slaves` body listing `agents`, as a master of `version` writes it.
pub(crate) fn master_slaves(agents: &[ListedAgent], version: MesosVersion) -> String {
    let per_agent = match version {
        MesosVersion::V1_0 | MesosVersion::V1_4 => LISTED_AGENT_BYTES,
        MesosVersion::V1_9 | MesosVersion::V1_11 => LISTED_AGENT_FULL_BYTES,
    };
    let mut out = String::with_capacity(64 + agents.len() * per_agent);
    out.push_str("{\"slaves\":[");
    for (i, agent) in agents.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_listed_agent(&mut out, agent, version);
    }
    out.push(']');
    if version != MesosVersion::V1_0 {
        out.push_str(",\"recovered_slaves\":[]");
    }
    out.push('}');
    out
}

fn push_listed_agent(out: &mut String, agent: &ListedAgent, version: MesosVersion) {
    let (ip, port, addr) = (agent.addr.ip(), agent.addr.port(), agent.addr);
    // Writing to a String cannot fail. `addr` shows an IPv6 address in brackets, as
    // libprocess pids do.
    let _ = write!(
        out,
        "{{\"id\":\"{}\",\"hostname\":\"{ip}\",\"pid\":\"slave(1)@{addr}\",\"registered_time\":",
        agent.id
    );
    push_f64(out, agent.registered_time);
    match version {
        // No port but in the pid; `active` only to say an agent is not.
        MesosVersion::V1_0 => {
            if !agent.active {
                out.push_str(",\"active\":false");
            }
            out.push_str(",\"attributes\":{}");
        }
        MesosVersion::V1_4 => {
            let _ = write!(out, ",\"port\":{port},\"active\":{}", agent.active);
            out.push_str(",\"attributes\":{}");
        }
        MesosVersion::V1_9 | MesosVersion::V1_11 => {
            let _ = write!(out, ",\"port\":{port},\"active\":{},", agent.active);
            out.push_str(AGENT_DETAILS_1_9);
        }
    }
    out.push('}');
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
            no_statistics_every: 0,
            no_timestamp_every: 0,
            version: MesosVersion::V1_4,
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
    fn versions_shape_limits_and_unreadable_entries() {
        let work = Workload {
            version: MesosVersion::V1_11,
            no_statistics_every: 3,
            no_timestamp_every: 4,
            ..workload(4)
        };
        let body = statistics(&work, 0, 1, 1_764_075_010.25);
        let value: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        let stats = |i: usize| &value[i]["statistics"];
        assert_eq!(stats(0)["cpus_soft_limit"], stats(0)["cpus_limit"]);
        assert_eq!(
            stats(0)["mem_soft_limit_bytes"],
            stats(0)["mem_limit_bytes"]
        );
        assert!(stats(1).get("cpus_limit").is_none() && stats(1).get("mem_limit_bytes").is_none());
        assert!(stats(1)["cpus_soft_limit"].as_f64().is_some());
        assert!(value[2].get("statistics").is_none());
        assert!(stats(3).get("timestamp").is_none() && stats(3)["cpus_user_time_secs"].is_f64());
    }

    fn listed(addr: &str, active: bool) -> ListedAgent {
        ListedAgent {
            id: String::from("c-S0"),
            addr: addr.parse().expect("a socket address"),
            active,
            registered_time: 1_764_075_000.0,
        }
    }

    #[test]
    fn listings_look_like_their_version() {
        let agents = [listed("127.1.0.1:5051", true), listed("[::1]:5052", false)];
        let parse = |version| -> serde_json::Value {
            serde_json::from_str(&master_slaves(&agents, version)).expect("valid JSON")
        };
        let old = parse(MesosVersion::V1_0);
        assert!(old.get("recovered_slaves").is_none());
        let first = &old["slaves"][0];
        assert!(first.get("port").is_none() && first.get("active").is_none());
        assert_eq!(first["pid"], "slave(1)@127.1.0.1:5051");
        assert_eq!(old["slaves"][1]["active"], false);
        assert_eq!(old["slaves"][1]["hostname"], "::1");
        assert_eq!(old["slaves"][1]["pid"], "slave(1)@[::1]:5052");
        let new = parse(MesosVersion::V1_9);
        assert_eq!(new["slaves"][0]["port"], 5051);
        assert_eq!(new["slaves"][0]["active"], true);
        let full = master_slaves(&agents[..1], MesosVersion::V1_11).len();
        assert!(
            (1600..=LISTED_AGENT_FULL_BYTES).contains(&full),
            "{full} bytes"
        );
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
