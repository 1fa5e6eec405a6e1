//! `asgard-stats check`: reaches every part a pass needs (each master, Redis, the
//! broker) and prints one line per part with `ok` or the reason, exiting 0 only if a pass
//! could run.

use crate::config::Config;
use crate::mesos::MesosClient;
use crate::state::StateStore;
use crate::tally::exit;

pub(crate) fn run(config: &Config) -> i32 {
    let mut lines = Vec::new();
    let masters_ok = check_masters(config, &mut lines);
    let redis_ok = check_redis(config, &mut lines);
    let broker_ok = check_broker(config, &mut lines);
    for line in &lines {
        println!("{line}");
    }
    if masters_ok && redis_ok && broker_ok {
        exit::OK
    } else {
        exit::UNAVAILABLE
    }
}

fn check_masters(config: &Config, lines: &mut Vec<String>) -> bool {
    let client = match MesosClient::new(&config.http) {
        Ok(client) => client,
        Err(e) => {
            lines.push(format!("mesos    FAIL {e:#}"));
            return false;
        }
    };
    let mut any = false;
    for master in &config.masters {
        match client.list_agents(std::slice::from_ref(master)) {
            Ok(list) => {
                any = true;
                lines.push(format!(
                    "master   ok   {master}: leader {} with {} active agents",
                    list.leader,
                    list.agents.len()
                ));
            }
            Err(e) => lines.push(format!("master   FAIL {e}")),
        }
    }
    any
}

fn check_redis(config: &Config, lines: &mut Vec<String>) -> bool {
    let result = StateStore::new(&config.redis).and_then(|store| {
        let version = store.ping()?;
        let key = store.lock_key(config.shard);
        let holder = store.lock_holder(&key)?;
        Ok((version, key, holder))
    });
    match result {
        Ok((version, key, holder)) => {
            let lock = holder.map_or("free".to_string(), |h| format!("held by {h}"));
            lines.push(format!(
                "redis    ok   {} (version {version}); lock {key} {lock}",
                config.redis.shown_url
            ));
            true
        }
        Err(e) => {
            lines.push(format!("redis    FAIL {e}"));
            false
        }
    }
}

fn check_broker(config: &Config, lines: &mut Vec<String>) -> bool {
    let broker = match config.require_broker() {
        Ok(b) => b,
        Err(e) => {
            lines.push(format!("broker   FAIL {e}"));
            return false;
        }
    };
    match crate::broker::probe(broker) {
        Ok(report) => {
            lines.push(format!("broker   ok   {report}"));
            true
        }
        Err(e) => {
            lines.push(format!("broker   FAIL {e}"));
            false
        }
    }
}
