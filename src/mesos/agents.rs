//! The master's agent list, read as a stream: each `/master/slaves` entry becomes an
//! [`Agent`], is counted as inactive, or is kept as [`Unusable`], as soon as it is read.
//! Apart from the HTTP client so that what a pass keeps of a list is read here alone.

use crate::config::{fnv1a, Shard};
use crate::stats::json::{Object, Scalar};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::io::Read;

/// An active agent: its id (for sharding) and its `hostname:port` (the document's host;
/// an IPv6 literal hostname in brackets, `[::1]:5051`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) address: String,
}

/// The agents of this shard, all without one: those whose id hashes (FNV-1a, stable
/// across hosts and versions) to it. Every agent falls in exactly one shard of N.
pub(crate) fn of_shard(agents: Vec<Agent>, shard: Option<Shard>) -> Vec<Agent> {
    match shard {
        Some(shard) => agents.into_iter().filter(|a| shard.holds(&a.id)).collect(),
        None => agents,
    }
}

/// The entries of a list that repeat an agent already listed: the same id at the same
/// address, which is one agent.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RepeatedEntries {
    pub(crate) count: usize,
    /// The first one, for the log line.
    pub(crate) first: Option<Agent>,
}

/// The agents once each, in the list's order: an entry naming an agent id at an address
/// an earlier entry named is the same agent, fetched and counted once. The same id at
/// another address is another entry, kept (docs/state.md keys state by both).
pub(crate) fn without_repeats(agents: Vec<Agent>) -> (Vec<Agent>, RepeatedEntries) {
    let mut seen = std::collections::HashSet::with_capacity(agents.len());
    let first_seen: Vec<bool> = agents
        .iter()
        .map(|a| seen.insert((a.id.as_str(), a.address.as_str())))
        .collect();
    drop(seen);
    let mut kept = Vec::with_capacity(agents.len());
    let mut repeated = RepeatedEntries::default();
    for (agent, first) in agents.into_iter().zip(first_seen) {
        if first {
            kept.push(agent);
        } else {
            repeated.count += 1;
            repeated.first.get_or_insert(agent);
        }
    }
    (kept, repeated)
}

/// The agents of the leading master, and which master answered.
#[derive(Debug)]
pub(crate) struct AgentList {
    pub(crate) leader: String,
    pub(crate) agents: Vec<Agent>,
    /// Agents the master listed as inactive, which are not collected.
    pub(crate) inactive: usize,
    /// Entries that name no agent that can be reached; skipped, not collected.
    pub(crate) unusable: Unusable,
}

/// How many unusable entries of the agent list are named one by one. Past them an entry
/// costs only what the shard rule needs (nothing without an id, its id's hash with one),
/// so a list of millions of bad entries is not millions of items, nor of log lines.
pub(crate) const UNUSABLE_NAMED: usize = 10;

/// The entries of the agent list that name no agent that can be reached.
#[derive(Debug, Default)]
pub(crate) struct Unusable {
    /// The first [`UNUSABLE_NAMED`] of them, in the master's order.
    first: Vec<UnusableAgent>,
    /// How many after those had no string id.
    later_without_id: usize,
    /// The shard hash of the id of each other one after those.
    later_id_hashes: Vec<u64>,
}

impl Unusable {
    fn push(&mut self, entry: UnusableAgent) {
        if self.first.len() < UNUSABLE_NAMED {
            self.first.push(entry);
        } else if let Some(id) = &entry.id {
            self.later_id_hashes.push(fnv1a(id.as_bytes()));
        } else {
            self.later_without_id += 1;
        }
    }

    /// How many entries of the whole list are unusable.
    pub(crate) fn len(&self) -> usize {
        self.first.len() + self.later_without_id + self.later_id_hashes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many are of this shard (all without one), and those of them among the named
    /// ones. An entry without an id belongs to the shard of the empty id, so exactly one
    /// shard has it.
    pub(crate) fn of_shard(&self, shard: Option<Shard>) -> (usize, Vec<&UnusableAgent>) {
        let holds = |hash: u64| shard.is_none_or(|shard| shard.holds_hash(hash));
        let named: Vec<&UnusableAgent> = self
            .first
            .iter()
            .filter(|u| holds(fnv1a(u.id.as_deref().unwrap_or("").as_bytes())))
            .collect();
        let without_id = if holds(fnv1a(b"")) {
            self.later_without_id
        } else {
            0
        };
        let with_id = self.later_id_hashes.iter().filter(|&&h| holds(h)).count();
        (named.len() + without_id + with_id, named)
    }
}

/// An entry of the agent list that cannot be collected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnusableAgent {
    /// Its position in the master's list.
    pub(crate) position: usize,
    /// Its `id`, when it has a string one.
    pub(crate) id: Option<String>,
    pub(crate) why: &'static str,
}

impl fmt::Display for UnusableAgent {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let id = self.id.as_deref().unwrap_or("without an id");
        write!(
            f,
            "agent list entry {} ({id}) skipped: {}",
            self.position, self.why
        )
    }
}

/// Reads a `/master/slaves` answer as a stream: each entry is reduced to an [`Agent`] (or
/// counted as inactive, or kept as unusable) as soon as it is read, and every other field
/// of the answer is skipped without being kept.
pub(crate) fn parse_agent_list(
    reader: impl Read,
    leader: String,
) -> Result<AgentList, serde_json::Error> {
    let Listing {
        agents,
        inactive,
        unusable,
    } = serde_json::from_reader::<_, Answered>(reader)?.0;
    Ok(AgentList {
        leader,
        agents,
        inactive,
        unusable,
    })
}

/// The entries of a listing, each reduced to what a pass keeps, in the master's order.
#[derive(Default)]
struct Listing {
    agents: Vec<Agent>,
    inactive: usize,
    unusable: Unusable,
}

/// The whole answer: an object whose `slaves` array is the listing.
struct Answered(Listing);

impl<'de> Deserialize<'de> for Answered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AgentListVisitor)
    }
}

struct AgentListVisitor;

impl<'de> Visitor<'de> for AgentListVisitor {
    type Value = Answered;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a slaves array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Answered, A::Error> {
        let mut listing = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "slaves" && listing.is_none() {
                listing = Some(map.next_value::<Slaves>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        listing
            .map(Answered)
            .ok_or_else(|| serde::de::Error::missing_field("slaves"))
    }
}

/// The `slaves` array, read entry by entry.
struct Slaves(Listing);

impl<'de> Deserialize<'de> for Slaves {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(SlavesVisitor)
    }
}

struct SlavesVisitor;

impl<'de> Visitor<'de> for SlavesVisitor {
    type Value = Slaves;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of agents")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Slaves, A::Error> {
        let mut listing = Listing::default();
        let mut position = 0;
        while let Some(entry) = seq.next_element::<Object<SlaveEntry>>()? {
            match listed_agent(entry) {
                Ok(Some(agent)) => listing.agents.push(agent),
                Ok(None) => listing.inactive += 1,
                Err((id, why)) => listing.unusable.push(UnusableAgent { position, id, why }),
            }
            position += 1;
        }
        Ok(Slaves(listing))
    }
}

/// The fields of an agent entry that a pass uses; every other one is skipped unread.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SlaveEntry {
    id: Scalar,
    hostname: Scalar,
    port: Scalar,
    pid: Scalar,
    active: Scalar,
}

/// An entry's agent; None when it is listed inactive (old masters send no `active`: such
/// an agent is active); Err with the entry's id and why when it cannot be reached.
fn listed_agent(
    entry: Object<SlaveEntry>,
) -> Result<Option<Agent>, (Option<String>, &'static str)> {
    let Object::Is(entry) = entry else {
        return Err((None, "not an object"));
    };
    let id = match entry.id {
        Scalar::Text(id) if !id.is_empty() => id,
        _ => return Err((None, "no id")),
    };
    if entry.active == Scalar::Bool(false) {
        return Ok(None);
    }
    let Some(hostname) = entry.hostname.text().filter(|h| !h.is_empty()) else {
        return Err((Some(id), "no hostname"));
    };
    let port = match entry.port {
        Scalar::Unsigned(port) => u16::try_from(port).ok().filter(|&p| p > 0),
        _ => None,
    };
    let Some(port) = port.or_else(|| entry.pid.text().and_then(port_of_pid)) else {
        return Err((Some(id), "no port, and none in its pid"));
    };
    Ok(Some(Agent {
        address: host_port(hostname, port),
        id,
    }))
}

/// The port of a libprocess pid, `slave(1)@10.0.0.7:5051` or `slave(1)@[2001:db8::1]:5051`.
fn port_of_pid(pid: &str) -> Option<u16> {
    let (_, address) = pid.rsplit_once('@')?;
    let (_, port) = address.rsplit_once(':')?;
    port.parse().ok().filter(|&p| p > 0)
}

/// `host:port` for a URL and the document: an IPv6 literal goes in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(body: &str) -> AgentList {
        parse_agent_list(body.as_bytes(), "http://m:5050".into()).expect("parses")
    }

    fn addresses(list: &AgentList) -> Vec<&str> {
        list.agents.iter().map(|a| a.address.as_str()).collect()
    }

    #[test]
    fn an_id_at_one_address_is_one_agent_and_at_two_addresses_two() {
        let list = list(
            r#"{"slaves":[
            {"id":"S0","hostname":"10.0.0.1","port":5051},
            {"id":"S0","hostname":"10.0.0.2","port":5051},
            {"id":"S1","hostname":"10.0.0.3","port":5051},
            {"id":"S0","hostname":"10.0.0.1","port":5051},
            {"id":"S0","hostname":"10.0.0.1","port":5051}]}"#,
        );
        let (agents, repeated) = without_repeats(list.agents);
        let pairs: Vec<(&str, &str)> = agents
            .iter()
            .map(|a| (a.id.as_str(), a.address.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("S0", "10.0.0.1:5051"),
                ("S0", "10.0.0.2:5051"),
                ("S1", "10.0.0.3:5051")
            ]
        );
        assert_eq!(repeated.count, 2);
        assert_eq!(
            repeated.first.map(|a| a.address),
            Some("10.0.0.1:5051".to_string())
        );
        let (agents, repeated) = without_repeats(Vec::new());
        assert!(agents.is_empty() && repeated == RepeatedEntries::default());
    }

    #[test]
    fn agent_list_skips_inactive_agents() {
        let list = list(
            r#"{"slaves":[
            {"id":"S0","hostname":"10.0.111.32","port":5051,"active":true,"pid":"x"},
            {"id":"S1","hostname":"10.0.111.33","port":5051,"active":false},
            {"id":"S2","hostname":"h","port":5052}],"recovered_slaves":[{"id":"S9"}]}"#,
        );
        assert_eq!(addresses(&list), ["10.0.111.32:5051", "h:5052"]);
        assert_eq!(list.inactive, 1);
        assert!(list.unusable.is_empty());
        for bad in [
            "{}",
            "<html>",
            r#"{"slaves": 3}"#,
            "[]",
            r#"{"slaves":[{"id":"S0"}"#,
        ] {
            assert!(
                parse_agent_list(bad.as_bytes(), String::new()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn old_masters_give_the_port_only_in_the_pid() {
        let list = list(
            r#"{"slaves":[
            {"id":"S0","hostname":"agent-7.example.com","pid":"slave(1)@10.0.0.7:5051"},
            {"id":"S1","hostname":"2001:db8::7","pid":"slave(1)@[2001:db8::7]:5052"},
            {"id":"S2","hostname":"::1","port":5053,"pid":"slave(1)@[::1]:5053"},
            {"id":"S3","hostname":"10.0.0.9","port":0,"pid":"slave(1)@10.0.0.9:5054"}]}"#,
        );
        assert_eq!(
            addresses(&list),
            [
                "agent-7.example.com:5051",
                "[2001:db8::7]:5052",
                "[::1]:5053",
                "10.0.0.9:5054"
            ]
        );
        assert_eq!(list.agents[1].id, "S1");
    }

    #[test]
    fn unusable_entries_are_skipped_and_named_never_the_whole_list() {
        let list = list(
            r#"{"slaves":[3, "x", null, [1],
            {"hostname":"h","port":1},
            {"id":"S5","port":5051},
            {"id":"S6","hostname":"","port":5051},
            {"id":"S7","hostname":"h"},
            {"id":"S8","hostname":"h","port":70000,"pid":"slave(1)@h"},
            {"id":"S9","hostname":"h","port":"5051","pid":7},
            {"id":"S10","hostname":"h","port":5051,"active":"yes","extra":{"a":[1,{"b":2}]}}]}"#,
        );
        assert_eq!(addresses(&list), ["h:5051"]);
        let why: Vec<(usize, Option<&str>, &str)> = list
            .unusable
            .first
            .iter()
            .map(|u| (u.position, u.id.as_deref(), u.why))
            .collect();
        assert_eq!(
            why,
            [
                (0, None, "not an object"),
                (1, None, "not an object"),
                (2, None, "not an object"),
                (3, None, "not an object"),
                (4, None, "no id"),
                (5, Some("S5"), "no hostname"),
                (6, Some("S6"), "no hostname"),
                (7, Some("S7"), "no port, and none in its pid"),
                (8, Some("S8"), "no port, and none in its pid"),
                (9, Some("S9"), "no port, and none in its pid"),
            ]
        );
        assert_eq!(
            list.unusable.first[7].to_string(),
            "agent list entry 7 (S7) skipped: no port, and none in its pid"
        );
    }

    #[test]
    fn past_the_first_unusable_entries_each_is_only_counted_in_its_shard() {
        let mut entries = vec!["0".to_string(); 1000];
        entries.extend((0..100).map(|i| format!(r#"{{"id":"bad-{i}"}}"#)));
        let list = list(&format!(r#"{{"slaves":[{}]}}"#, entries.join(",")));
        assert_eq!(list.unusable.len(), 1100);
        let (all, named) = list.unusable.of_shard(None);
        assert_eq!((all, named.len()), (1100, UNUSABLE_NAMED));
        let shards = [1, 2, 3].map(|index| Shard { index, count: 3 });
        let counts = shards.map(|shard| list.unusable.of_shard(Some(shard)).0);
        assert_eq!(counts.iter().sum::<usize>(), 1100, "{counts:?}");
        let empty_id = shards.map(|shard| shard.holds(""));
        for (count, has_empty) in counts.iter().zip(empty_id) {
            let with_ids = if has_empty { count - 1000 } else { *count };
            assert!(with_ids < 100, "ids spread over shards: {counts:?}");
        }
    }

    #[test]
    fn pids_and_hosts() {
        assert_eq!(port_of_pid("slave(1)@10.0.0.7:5051"), Some(5051));
        assert_eq!(port_of_pid("slave(1)@[2001:db8::1]:5051"), Some(5051));
        assert_eq!(port_of_pid("slave(1)@10.0.0.7"), None);
        assert_eq!(port_of_pid("slave(1)@10.0.0.7:0"), None);
        assert_eq!(port_of_pid("10.0.0.7:5051"), None);
        assert_eq!(host_port("::1", 5051), "[::1]:5051");
        assert_eq!(host_port("[::1]", 5051), "[::1]:5051");
        assert_eq!(host_port("10.0.0.1", 5051), "10.0.0.1:5051");
    }

    #[test]
    fn shards_split_agents_exactly_once() {
        let agents: Vec<Agent> = (0..1000)
            .map(|i| Agent {
                id: format!("90ba2028-fed0-4f19-a2b1-cb35baf9b2cd-S{i}"),
                address: format!("10.0.{}.{}:5051", i / 250, i % 250),
            })
            .collect();
        let count = 4;
        let mut seen = Vec::new();
        for index in 1..=count {
            let part = of_shard(agents.clone(), Some(Shard { index, count }));
            assert!(
                part.len() > 150,
                "shard {index} is too small: {}",
                part.len()
            );
            seen.extend(part);
        }
        seen.sort_by(|a, b| a.id.cmp(&b.id));
        let mut all = agents;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(seen, all);
    }
}
