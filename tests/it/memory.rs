//! The memory budget of agent answers in flight (`--body-budget-bytes`): agents streaming
//! large answers slowly are read a budget's worth at a time, so the pass's peak resident
//! memory (VmHWM of the running process) follows the budget, not the number of agents.
//! Real redis-server, the shared RabbitMQ node, mesos-sim's `SlowBody`. Clusters here
//! bind agents on loopback ranges from `loopback_range`.

use crate::common::*;
use mesos_sim::AgentFault;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// Each agent's answer: just under the default --max-body-bytes (16 MiB).
const BODY: u64 = 15 * MIB;
/// Four answers at once.
const BUDGET: u64 = 64 * MIB;
/// Workers of the pass: fewer than its agents.
const WORKERS: usize = 4;

/// A world whose `agents` agents each stream a valid answer of `BODY` bytes over half a
/// second.
fn big_slow_answers(agents: usize) -> World {
    let world = World::start(fresh_spec(agents, 2));
    for agent in 0..agents {
        world.cluster.set_agent_fault(
            agent,
            AgentFault::SlowBody {
                bytes: BODY as usize,
                over: Duration::from_millis(500),
            },
        );
    }
    world
}

/// Runs one pass with this body budget; returns it with its peak resident memory in
/// bytes, read from /proc while it runs (the high-water mark only grows, so the last
/// reading before the process ends is its peak).
fn pass_with_budget(world: &World, budget: u64) -> (Run, u64) {
    let running = world
        .collector()
        .env("STATS_COLLECTOR_BODY_BUDGET_BYTES", budget.to_string())
        // Fewer workers than agents: those waiting for the budget must wait in their
        // place, not as stalled fetches with threads started beside them.
        .env("STATS_COLLECTOR_WORKERS", WORKERS.to_string())
        // Agents wait for the budget in turn: their requests may take a while.
        .env("STATS_REQUEST_TIMEOUT", "40")
        .env("STATS_COLLECTOR_DEADLINE", "50")
        .arg("collect")
        .spawn();
    let status = format!("/proc/{}/status", running.pid());
    let mut peak_kib = 0;
    // A process that has ended (a zombie until waited for) shows no VmHWM.
    while let Some(kib) = std::fs::read_to_string(&status)
        .ok()
        .as_deref()
        .and_then(high_water_mark_kib)
    {
        peak_kib = kib;
        std::thread::sleep(Duration::from_millis(10));
    }
    (running.wait(), peak_kib * 1024)
}

fn high_water_mark_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn big_answers_are_read_a_budget_at_a_time() {
    let agents = 24;
    let world = big_slow_answers(agents);
    let (run, peak) = pass_with_budget(&world, BUDGET);
    run.assert_success();
    assert!(
        run.stderr.contains(&format!(
            "agents listed={agents} answered={agents} failed=0"
        )),
        "{run}"
    );
    eprintln!(
        "{agents} answers of {} MiB, budget {} MiB: peak RSS {:.1} MiB",
        BODY / MIB,
        BUDGET / MIB,
        peak as f64 / MIB as f64
    );
    assert!(peak > MIB, "the peak was read: {peak} bytes");
    assert!(
        peak < BUDGET * 3 / 2,
        "peak RSS {} MiB over 1.5 x the budget: {run}",
        peak / MIB
    );
    // Threads beside the workers: only for the answers being read (slowly), as many as
    // the budget holds at once, never one per agent waiting for the budget.
    let most_threads = run
        .stderr
        .split(" threads at most")
        .next()
        .filter(|head| head.len() < run.stderr.len())
        .and_then(|head| head.rsplit(' ').next())
        .map_or(WORKERS, |n| n.parse().expect("a thread count"));
    let read_at_once = (BUDGET / BODY) as usize;
    assert!(
        most_threads <= WORKERS + read_at_once + 1,
        "{most_threads} threads for {WORKERS} workers and {read_at_once} answers at once: {run}"
    );

    // The measure follows the answers: with room for all of them, the same pass holds
    // far more at once.
    let (run, unbounded) = pass_with_budget(&world, agents as u64 * 16 * MIB);
    run.assert_success();
    eprintln!(
        "the same with room for every answer: peak RSS {:.1} MiB",
        unbounded as f64 / MIB as f64
    );
    assert!(unbounded > 2 * BUDGET, "{} MiB", unbounded / MIB);
}

/// An agent sending an answer without a length a byte at a time, for longer than the
/// request timeout, holds no more of the budget than its answer has taken so far (64 KiB
/// at first): the other agents are read meanwhile. When such an answer reserved
/// `--max-body-bytes` (the whole 1 MiB budget here), every other agent waited behind it
/// until its own request timed out.
#[test]
fn an_answer_without_a_length_holds_only_what_it_has_read() {
    let agents = 4;
    let world = World::start(fresh_spec(agents, 2));
    let dribbled = format!("HTTP/1.1 200 OK\r\n\r\n[{}]", " ".repeat(20_000));
    world.cluster.set_agent_fault(
        0,
        AgentFault::Raw {
            bytes: dribbled.into_bytes(),
            one_byte_at_a_time: true,
            endless: Vec::new(),
        },
    );
    // The others answer a second late, so the dribbling answer has its share by then.
    for agent in 1..agents {
        world
            .cluster
            .set_agent_fault(agent, AgentFault::Slow(Duration::from_secs(1)));
    }
    let run = world
        .collector()
        .env("STATS_COLLECTOR_BODY_BUDGET_BYTES", MIB.to_string())
        .env("STATS_REQUEST_TIMEOUT", "4")
        .arg("collect")
        .run();
    assert!(
        run.stderr.contains(&format!(
            "agents listed={agents} answered={} failed=1",
            agents - 1
        )),
        "{run}"
    );
    assert!(run.stderr.contains("timeout=1"), "{run}");
}
