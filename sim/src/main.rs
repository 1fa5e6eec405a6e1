//! The `mesos-sim` binary: runs a simulated cluster until killed, for the README demo
//! and the benchmark.
//!
//! Once everything listens it prints the masters as `HOLLOWMAN_MESOS_ADDRESS*` lines (and
//! writes them atomically to `--env-file`, so a script can wait for the file to appear),
//! then serves until SIGTERM or SIGINT.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mesos_sim::{AgentFault, Cluster, ClusterSpec, MesosVersion};

/// Serve a simulated Apache Mesos cluster on loopback until killed.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Active agents, each on its own loopback address.
    #[arg(long, default_value_t = 3)]
    agents: usize,
    /// Tasks per agent.
    #[arg(long, default_value_t = 5)]
    tasks: usize,
    /// Standby masters that redirect to the leader.
    #[arg(long, default_value_t = 0)]
    standbys: usize,
    /// Extra agents listed as inactive and not served.
    #[arg(long, default_value_t = 0)]
    inactive: usize,
    /// Every Nth task of an agent has no CFS counters (0 = none).
    #[arg(long, default_value_t = 0)]
    no_cfs_every: usize,
    /// Every Nth task of an agent gets a new executor id per request (0 = none).
    #[arg(long, default_value_t = 0)]
    churn_every: usize,
    /// Agents bind 127.A.B.C counting up from this A.B.C.
    #[arg(long, default_value = "1.0.1", value_parser = parse_first_ip)]
    first_ip: [u8; 3],
    /// Agents that accept and read requests but never answer (the last ones).
    #[arg(long, default_value_t = 0)]
    hang: usize,
    /// Agents that answer after --slow-ms (the ones before the hanging ones).
    #[arg(long, default_value_t = 0)]
    slow: usize,
    /// Delay of the --slow agents, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    slow_ms: u64,
    /// Agents that answer 500 (the ones before the slow ones).
    #[arg(long, default_value_t = 0)]
    broken: usize,
    /// Agents whose answer is padded to --big-bytes and sent over --big-ms (the ones
    /// before the broken ones).
    #[arg(long, default_value_t = 0)]
    big: usize,
    /// Size of the --big agents' answers, in bytes (still a valid JSON array).
    #[arg(long, default_value_t = 15 * 1024 * 1024)]
    big_bytes: usize,
    /// How long the --big agents take to send their answers, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    big_ms: u64,
    /// Spread the faulty agents evenly over the list (as a master's order would) instead
    /// of making them the last ones; the hanging ones still come last of all.
    #[arg(long)]
    spread: bool,
    /// The Mesos release masters and agents answer like: 1.0, 1.4, 1.9 or 1.11.
    #[arg(long, default_value = "1.4")]
    mesos_version: MesosVersion,
    /// Agents listen on ::1 (each on its own port) and are listed by that IPv6 hostname.
    #[arg(long)]
    ipv6: bool,
    /// Every Nth task of an agent is served without statistics (0 = none).
    #[arg(long, default_value_t = 0)]
    no_statistics_every: usize,
    /// Every Nth task of an agent is served without a statistics timestamp (0 = none).
    #[arg(long, default_value_t = 0)]
    no_timestamp_every: usize,
    /// Extra agents listed active that nothing serves (connections refused): a large
    /// listing without a listener per agent.
    #[arg(long, default_value_t = 0)]
    unserved: usize,
    /// Also write the address lines to this file, once everything listens.
    #[arg(long)]
    env_file: Option<PathBuf>,
}

fn parse_first_ip(text: &str) -> Result<[u8; 3], String> {
    let octets: Vec<u8> = text
        .split('.')
        .map(|part| part.parse::<u8>().map_err(|e| format!("{part:?}: {e}")))
        .collect::<Result<_, _>>()?;
    <[u8; 3]>::try_from(octets).map_err(|_| String::from("expected three octets, like 1.0.1"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match start(&args) {
        Ok(cluster) => serve_forever(cluster),
        Err(message) => {
            eprintln!("mesos-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: &Args) -> Result<Cluster, String> {
    let faults = fault_plan(args)?;
    let spec = ClusterSpec {
        agents: args.agents,
        tasks_per_agent: args.tasks,
        standby_masters: args.standbys,
        inactive_agents: args.inactive,
        no_cfs_every: args.no_cfs_every,
        churn_every: args.churn_every,
        first_ip: args.first_ip,
        credentials: None,
        tls: None,
        version: args.mesos_version,
        ipv6: args.ipv6,
        no_statistics_every: args.no_statistics_every,
        no_timestamp_every: args.no_timestamp_every,
        unserved_agents: args.unserved,
        group_prefix: String::new(),
        repeats: Vec::new(),
    };
    let cluster = Cluster::start(spec).map_err(|e| format!("cannot start the cluster: {e}"))?;
    for (agent, fault) in faults {
        cluster.set_agent_fault(agent, fault);
    }
    let lines = env_lines(&cluster.master_urls());
    if let Some(path) = &args.env_file {
        write_atomically(path, &lines)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    print!("{lines}");
    io::stdout()
        .flush()
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    eprintln!("mesos-sim: {}", summary(args, &cluster));
    Ok(cluster)
}

/// Which agent gets which fault: the last agents hang, the ones before them are slow, the
/// ones before those are broken, and the ones before those big, so combined options never
/// overlap. With `--spread`
/// the same order holds, with faulty agents evenly spaced over the list.
fn fault_plan(args: &Args) -> Result<Vec<(usize, AgentFault)>, String> {
    let groups = [
        (args.hang, AgentFault::Hang),
        (
            args.slow,
            AgentFault::Slow(Duration::from_millis(args.slow_ms)),
        ),
        (args.broken, AgentFault::Status(500)),
        (
            args.big,
            AgentFault::SlowBody {
                bytes: args.big_bytes,
                over: Duration::from_millis(args.big_ms),
            },
        ),
    ];
    let faulty: usize = groups.iter().map(|(count, _)| count).sum();
    if faulty > args.agents {
        return Err(format!(
            "{faulty} faulty agents requested but only {} agents",
            args.agents
        ));
    }
    let step_back = |nth: usize| {
        if args.spread {
            // Distinct for every nth < faulty, because faulty <= agents.
            nth * args.agents / faulty
        } else {
            nth
        }
    };
    let mut plan = Vec::with_capacity(faulty);
    for (count, fault) in groups {
        for _ in 0..count {
            plan.push((args.agents - 1 - step_back(plan.len()), fault.clone()));
        }
    }
    Ok(plan)
}

/// One line per master, standbys first so a collector tries them before the leader:
/// `HOLLOWMAN_MESOS_ADDRESS` is the first master, `_0`, `_1`, ... the following ones.
fn env_lines(masters: &[String]) -> String {
    let mut lines = String::new();
    for (i, url) in masters.iter().enumerate() {
        let suffix = i
            .checked_sub(1)
            .map(|n| format!("_{n}"))
            .unwrap_or_default();
        lines.push_str(&format!("HOLLOWMAN_MESOS_ADDRESS{suffix}={url}\n"));
    }
    lines
}

/// Writes `path` through a temporary sibling and a rename, so readers never see it half
/// written.
fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp.{}", std::process::id()));
    fs::write(&temporary, contents)?;
    fs::rename(&temporary, path)
}

fn summary(args: &Args, cluster: &Cluster) -> String {
    let agents = cluster.agents();
    let span = match (agents.first(), agents.last()) {
        (Some(first), Some(last)) => format!("agents {} .. {}", first.address, last.address),
        _ => String::from("no agents"),
    };
    format!(
        "Mesos {}: {} agents x {} tasks ({} inactive, {} unserved), {} standby masters + leader {}; {span}",
        args.mesos_version.name(),
        args.agents,
        args.tasks,
        args.inactive,
        args.unserved,
        args.standbys,
        cluster.leader_url()
    )
}

/// Keeps the cluster alive until the process is killed; default SIGTERM/SIGINT handling
/// ends it.
fn serve_forever(_cluster: Cluster) -> ! {
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ip_takes_three_octets() {
        assert_eq!(parse_first_ip("1.0.1"), Ok([1, 0, 1]));
        assert!(parse_first_ip("1.0").is_err());
        assert!(parse_first_ip("1.0.256").is_err());
    }

    #[test]
    fn env_lines_list_every_master_once() {
        let masters = ["http://s0", "http://s1", "http://leader"].map(String::from);
        assert_eq!(
            env_lines(&masters),
            "HOLLOWMAN_MESOS_ADDRESS=http://s0\nHOLLOWMAN_MESOS_ADDRESS_0=http://s1\nHOLLOWMAN_MESOS_ADDRESS_1=http://leader\n"
        );
    }

    #[test]
    fn faults_go_to_distinct_agents_from_the_end() {
        let args = Args::parse_from([
            "mesos-sim",
            "--agents",
            "5",
            "--hang",
            "1",
            "--slow",
            "1",
            "--broken",
            "2",
            "--big",
            "1",
        ]);
        let plan = fault_plan(&args).expect("fits");
        let agents: Vec<usize> = plan.iter().map(|(agent, _)| *agent).collect();
        assert_eq!(agents, [4, 3, 2, 1, 0]);
        assert_eq!(plan[0].1, AgentFault::Hang);
        assert_eq!(plan[3].1, AgentFault::Status(500));
        assert!(matches!(plan[4].1, AgentFault::SlowBody { .. }));
        let too_many = Args::parse_from(["mesos-sim", "--agents", "1", "--hang", "2"]);
        assert!(fault_plan(&too_many).is_err());
    }

    #[test]
    fn spread_faults_are_evenly_spaced() {
        let args = Args::parse_from([
            "mesos-sim",
            "--agents",
            "8",
            "--hang",
            "2",
            "--broken",
            "2",
            "--spread",
        ]);
        let plan = fault_plan(&args).expect("fits");
        let agents: Vec<usize> = plan.iter().map(|(agent, _)| *agent).collect();
        assert_eq!(agents, [7, 5, 3, 1]);
        assert_eq!(plan[1].1, AgentFault::Hang);
        assert_eq!(plan[2].1, AgentFault::Status(500));
    }
}
