//! `master_agent_list`: a master's `/master/slaves` answer (`mesos/agents.rs`), any
//! bytes, read as the stream a pass reads.

use crate::config::Shard;
use crate::mesos::{of_shard, parse_agent_list, without_repeats};

/// Read or refused; every agent kept has an id and a `host:port` with a port; the list
/// keeps no more than the answer held (plus brackets and a port per agent); every agent
/// falls in exactly one shard of N; and repeats are dropped once and for all.
pub fn master_agent_list(bytes: &[u8]) {
    let Ok(list) = parse_agent_list(bytes, String::new()) else {
        return;
    };
    let mut kept = 0;
    for agent in &list.agents {
        assert!(!agent.id.is_empty(), "an agent without an id");
        let port = agent.address.rsplit_once(':').map(|(_, port)| port);
        assert!(
            port.and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p > 0),
            "an address without a port: {:?}",
            agent.address
        );
        kept += agent.id.len() + agent.address.len();
    }
    assert!(
        kept <= bytes.len() + 8 * list.agents.len(),
        "a list larger than its answer"
    );
    for count in 1..=3 {
        let shards = (1..=count).map(|index| Some(Shard { index, count }));
        let (mut agents, mut unusable) = (0, 0);
        for shard in shards {
            agents += of_shard(list.agents.clone(), shard).len();
            unusable += list.unusable.of_shard(shard).0;
        }
        assert_eq!(agents, list.agents.len(), "an agent in no shard or two");
        assert_eq!(
            unusable,
            list.unusable.len(),
            "an unusable entry in no shard or two"
        );
    }
    let (once, repeated) = without_repeats(list.agents.clone());
    assert_eq!(once.len() + repeated.count, list.agents.len());
    let (again, none) = without_repeats(once.clone());
    assert_eq!(
        (again, none.count),
        (once, 0),
        "repeats left after dropping them"
    );
}
