//! Every agent gets its turn (docs/pass.md): a pass cut short (its deadline, a signal, a
//! blocked broker) starts its agents in an order that the next pass continues, so that
//! passes cut short together cover every agent, rather than the head of the master's list
//! every time.
//!
//! The order is by a hash of each agent's id and address (stable whatever order the
//! master lists them in, and spread), rotated to start at the position the last cut
//! pass reached ([`StateStore::next_turn`](crate::state::StateStore)). An agent that
//! joins or leaves moves no other agent's place.

use crate::config::fnv1a;
use crate::mesos::Agent;

/// An agent's place in the order: its id and address hashed.
pub(crate) fn place(agent: &Agent) -> u64 {
    let mut bytes = Vec::with_capacity(agent.id.len() + agent.address.len() + 1);
    bytes.extend_from_slice(agent.id.as_bytes());
    bytes.push(b'/');
    bytes.extend_from_slice(agent.address.as_bytes());
    fnv1a(&bytes)
}

/// The agents in turn order: by place, starting at the first place at or after `from`
/// (at the smallest place without one), wrapping around.
pub(crate) fn in_turn_order(mut agents: Vec<Agent>, from: Option<u64>) -> Vec<Agent> {
    agents.sort_by_cached_key(place);
    let start = from.map_or(0, |from| agents.partition_point(|a| place(a) < from));
    agents.rotate_left(start);
    agents
}

/// Where the next pass starts once this one started `started` of `agents` (in turn
/// order): the place of the first agent it never started; None when it started them all.
pub(crate) fn next_turn(agents: &[Agent], started: usize) -> Option<u64> {
    agents.get(started).map(place)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(n: usize) -> Vec<Agent> {
        (0..n)
            .map(|i| Agent {
                id: format!("S{i}"),
                address: format!("10.0.0.{i}:5051"),
            })
            .collect()
    }

    #[test]
    fn cut_passes_continue_where_the_last_one_stopped_and_cover_every_agent() {
        let listed = agents(10);
        let mut seen = std::collections::HashSet::new();
        let mut from = None;
        // Each pass starts three agents, whatever order the master lists them in.
        for pass in 0..4 {
            let mut listing = listed.clone();
            listing.rotate_left(pass * 3 % 10);
            let order = in_turn_order(listing, from);
            seen.extend(order.iter().take(3).map(|a| a.id.clone()));
            from = next_turn(&order, 3);
        }
        assert_eq!(seen.len(), 10, "every agent within ceil(10 / 3) passes");
        let order = in_turn_order(listed.clone(), None);
        assert_eq!(next_turn(&order, 10), None, "a whole pass leaves no turn");
        assert_eq!(in_turn_order(Vec::new(), Some(7)), Vec::<Agent>::new());
        // A place past every agent's wraps to the first.
        assert_eq!(in_turn_order(listed.clone(), Some(u64::MAX))[0], order[0]);
    }
}
