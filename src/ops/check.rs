//! `asgard-stats check`: reaches every part a pass needs (each master, Redis, the broker
//! and the queue behind the routing key, or the exchange) without collecting anything, and prints one
//! aligned line per part with `ok` or `FAIL` and the reason, then a verdict line. With
//! `--metrics-file`, a line says whether its folder is writable; with `--pushgateway`,
//! whether the Pushgateway answers. It exits 0 only if a pass could run (and write and
//! push its metrics), 69 if it could not, and 2 when the configuration itself is unusable
//! (a CA file that cannot be read, no broker configured).

use crate::broker::Route;
use crate::config::{BrokerSettings, Config};
use crate::exit;
use crate::mesos::MesosClient;
use crate::state::StateStore;

/// The outcome of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Fail,
    /// Not tried, because what it depends on failed.
    Skipped,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fail => "FAIL",
            Status::Skipped => "-",
        }
    }
}

/// One line of the report.
#[derive(Debug)]
struct Line {
    part: &'static str,
    status: Status,
    detail: String,
}

/// What was found; a pass needs every one of the four.
#[derive(Debug, Default)]
struct CheckReport {
    lines: Vec<Line>,
    leader: bool,
    redis: bool,
    broker_login: bool,
    /// The documents have somewhere to go: the routing key's queue, or the exchange.
    queue: bool,
    /// The documents go to a named exchange (what `queue` is about).
    exchange: bool,
    /// The configuration cannot work whatever the servers do (exit 2).
    config_error: bool,
    /// `--metrics-file` is set and its folder cannot be written.
    metrics_unwritable: bool,
    /// `--pushgateway` is set and it does not answer as ready.
    pushgateway_unreachable: bool,
}

impl CheckReport {
    fn push(&mut self, part: &'static str, status: Status, detail: impl Into<String>) {
        self.lines.push(Line {
            part,
            status,
            detail: detail.into(),
        });
    }

    /// What is missing for a pass to run, in words; empty when nothing is.
    fn missing(&self) -> Vec<&'static str> {
        let needs = [
            (self.leader, "no master leads"),
            (self.redis, "Redis does not answer"),
            (self.broker_login, "no broker login"),
            (
                self.queue,
                if self.exchange {
                    "the exchange cannot be used"
                } else {
                    "no queue receives the routing key"
                },
            ),
        ];
        needs
            .iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, why)| *why)
            .collect()
    }

    /// Where a pass that can run could not report its metrics, in words.
    fn metrics_lost(&self) -> Vec<&'static str> {
        let lost = [
            (self.metrics_unwritable, "write its metrics file"),
            (self.pushgateway_unreachable, "push its metrics"),
        ];
        lost.iter()
            .filter(|(lost, _)| *lost)
            .map(|(_, what)| *what)
            .collect()
    }

    fn exit_code(&self) -> i32 {
        if self.config_error {
            exit::USAGE
        } else if self.missing().is_empty() && self.metrics_lost().is_empty() {
            exit::OK
        } else {
            exit::UNAVAILABLE
        }
    }

    /// The lines with the status words in one column, and the verdict last.
    fn render(&self) -> String {
        let width = self
            .lines
            .iter()
            .map(|l| l.part.len())
            .max()
            .unwrap_or(0)
            .max("pass".len());
        let mut out = String::new();
        let mut line = |part: &str, status: Status, detail: &str| {
            out.push_str(&format!("{part:<width$}  {:<4}  {detail}\n", status.word()));
        };
        for l in &self.lines {
            line(l.part, l.status, &l.detail);
        }
        let missing = self.missing();
        if self.config_error {
            line(
                "pass",
                Status::Fail,
                "the configuration is unusable (see the FAIL lines)",
            );
        } else if missing.is_empty() && !self.metrics_lost().is_empty() {
            let lost = self.metrics_lost().join(" nor ");
            line(
                "pass",
                Status::Fail,
                &format!("a pass can run but cannot {lost}"),
            );
        } else if missing.is_empty() {
            line("pass", Status::Ok, "a pass can run");
        } else {
            line(
                "pass",
                Status::Fail,
                &format!("a pass cannot run: {}", missing.join(", ")),
            );
        }
        out
    }
}

pub(crate) fn run(config: &Config) -> i32 {
    let mut report = CheckReport::default();
    check_masters(config, &mut report);
    check_redis(config, &mut report);
    check_broker(config, &mut report);
    check_metrics_file(config, &mut report);
    check_pushgateway(config, &mut report);
    print!("{}", report.render());
    report.exit_code()
}

/// Each master on its own, so the operator sees every one that is down, and which master
/// leads (a standby's redirect is followed).
fn check_masters(config: &Config, report: &mut CheckReport) {
    let client = match MesosClient::new(&config.http) {
        Ok(client) => client,
        Err(e) => {
            report.push("master", Status::Fail, format!("{e:#}"));
            report.config_error = true;
            return;
        }
    };
    for master in &config.masters {
        match client.list_agents(std::slice::from_ref(master)) {
            Ok(list) => {
                report.leader = true;
                let mut agents = format!(
                    "{} active agents, {} inactive",
                    list.agents.len(),
                    list.inactive
                );
                if !list.unusable.is_empty() {
                    agents.push_str(&format!(", {} unusable", list.unusable.len()));
                }
                let detail = if list.leader == *master {
                    format!("{master}: leading; {agents}")
                } else {
                    format!("{master}: not leading; leader {}: {agents}", list.leader)
                };
                report.push("master", Status::Ok, detail);
            }
            Err(e) => {
                let why = e
                    .attempts
                    .first()
                    .map_or_else(|| e.to_string(), |(_, why)| why.to_string());
                report.push("master", Status::Fail, format!("{master}: {why}"));
            }
        }
    }
}

/// PING, the server version and who holds the pass lock (of this shard, with --shard);
/// with Sentinel, the sentinel that answered and the master it named.
fn check_redis(config: &Config, report: &mut CheckReport) {
    let store = match StateStore::new(&config.redis) {
        Ok(store) => store,
        Err(e) => {
            report.push("redis", Status::Fail, e.to_string());
            report.config_error = true;
            return;
        }
    };
    let result = store.ping().and_then(|version| {
        let key = store.lock_key(config.shard);
        let holder = store.lock_holder(&key)?;
        Ok((version, key, holder))
    });
    match result {
        Ok((version, key, holder)) => {
            report.redis = true;
            let lock = match holder {
                None => format!("lock {key} free"),
                Some(holder) => format!("lock {key} held by {holder} (a pass is running)"),
            };
            // With Sentinel: who answered, and the master the PING went to.
            let master = store
                .located()
                .map(|l| format!("sentinel {} names master {}; ", l.sentinel, l.master))
                .unwrap_or_default();
            report.push(
                "redis",
                Status::Ok,
                format!(
                    "{}: {master}PONG, version {version}; {lock}",
                    config.redis.shown_url
                ),
            );
        }
        Err(e) => report.push("redis", Status::Fail, e.detail()),
    }
}

/// The login (host, vhost, user, password) at every broker of the list, one line each
/// (with the TLS version and certificate subject for `amqps://`), then where the
/// documents go, as seen at the first broker that answered: the queue the default
/// exchange routes a static key to, or the exchange (whether it exists, and the key a
/// document gets; its bindings are not visible over AMQP).
fn check_broker(config: &Config, report: &mut CheckReport) {
    let broker = match config.require_broker() {
        Ok(broker) => broker,
        Err(e) => {
            report.push("broker", Status::Fail, e.to_string());
            report.config_error = true;
            return;
        }
    };
    let tls = match crate::broker::tls_config(broker) {
        Ok(tls) => tls,
        Err(e) => {
            report.push("broker", Status::Fail, e);
            report.config_error = true;
            return;
        }
    };
    let mut route = None;
    for address in &broker.hosts {
        match crate::broker::probe(broker, address, tls.as_ref()) {
            Ok(probed) => {
                report.broker_login = true;
                let mut detail = format!(
                    "{address} vhost {:?}: logged in as {}",
                    broker.vhost, broker.user
                );
                if let Some(peer) = &probed.tls {
                    detail.push_str(&format!("; {}, certificate {}", peer.version, peer.subject));
                }
                report.push("broker", Status::Ok, detail);
                route.get_or_insert(probed.route);
            }
            Err(e) => report.push("broker", Status::Fail, e.detail()),
        }
    }
    report_route(broker, route, report);
}

/// The line saying where the documents go.
fn report_route(broker: &BrokerSettings, route: Option<Route>, report: &mut CheckReport) {
    let key = &broker.routing_key;
    let routing_key = format!("routing key {:?}", key.setting);
    // What a document's key looks like, when it names fields.
    let example = match key.fixed() {
        Some(_) => String::new(),
        None => format!(" (one key per document, e.g. {:?})", key.example()),
    };
    let exchange = &broker.exchange;
    report.exchange = !exchange.is_empty();
    let (part, status, detail) = match route {
        Some(Route::Queue(Ok(queue))) => {
            report.queue = true;
            let detail = format!(
                "{routing_key}: queue {:?} holds {} messages for {} consumers",
                key.setting, queue.messages, queue.consumers
            );
            ("queue", Status::Ok, detail)
        }
        Some(Route::Queue(Err(why))) => (
            "queue",
            Status::Fail,
            format!("{routing_key}: no queue receives it ({why})"),
        ),
        Some(Route::QueuePerKey) => {
            report.queue = true;
            let detail = format!(
                "{routing_key}{example}: the default exchange routes each document to the queue its key names; none checked"
            );
            ("queue", Status::Ok, detail)
        }
        Some(Route::Exchange(found)) => {
            let unseen = "its bindings are not visible over AMQP: a document no queue takes comes back and is sent again by the next pass";
            let (status, what) = match (found, broker.declare_exchange) {
                (Ok(()), _) => (Status::Ok, "exists".to_string()),
                (Err(why), true) => (
                    Status::Ok,
                    format!("does not exist yet ({why}); a pass declares it ({}, durable)", broker.exchange_type),
                ),
                (Err(why), false) => (
                    Status::Fail,
                    format!("cannot be used ({why}); create it, or set STATS_COLLECTOR_RABBITMQ_DECLARE_EXCHANGE"),
                ),
            };
            report.queue = status == Status::Ok;
            let detail = format!(
                "{exchange:?} {what}; documents go to it under {routing_key}{example}; {unseen}"
            );
            ("exchange", status, detail)
        }
        None => {
            let part = if report.exchange { "exchange" } else { "queue" };
            let detail = format!("{routing_key}: not checked without a broker login");
            (part, Status::Skipped, detail)
        }
    };
    report.push(part, status, detail);
}

/// Whether a pass could write its metrics file, by writing and removing the temporary
/// file it would use; no line without `--metrics-file`.
fn check_metrics_file(config: &Config, report: &mut CheckReport) {
    let Some(path) = &config.metrics_file else {
        return;
    };
    match crate::ops::metrics::probe(path) {
        Ok(()) => report.push(
            "metrics",
            Status::Ok,
            format!("{}: folder writable", path.display()),
        ),
        Err(e) => {
            report.metrics_unwritable = true;
            report.push(
                "metrics",
                Status::Fail,
                format!("{}: cannot be written: {e}", path.display()),
            );
        }
    }
}

/// Whether the Pushgateway answers as ready; no line without `--pushgateway`.
fn check_pushgateway(config: &Config, report: &mut CheckReport) {
    let Some(gateway) = &config.pushgateway else {
        return;
    };
    match crate::ops::push::probe(config, gateway) {
        Ok(()) => report.push(
            "pushgateway",
            Status::Ok,
            format!("{}: reachable, ready", gateway.shown_url),
        ),
        Err(why) => {
            report.pushgateway_unreachable = true;
            report.push(
                "pushgateway",
                Status::Fail,
                format!("{}: not reachable: {why}", gateway.shown_url),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_needs_all_four_parts_and_columns_align() {
        let mut report = CheckReport::default();
        report.push("master", Status::Ok, "http://m1: leading");
        report.push("redis", Status::Fail, "connection refused");
        report.push("queue", Status::Skipped, "not checked");
        report.leader = true;
        report.broker_login = true;
        report.queue = true;
        assert_eq!(report.exit_code(), exit::UNAVAILABLE);
        let text = report.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        for line in &lines {
            assert_eq!(&line[6..8], "  ", "{text}");
        }
        assert!(
            lines[1].starts_with("redis   FAIL  connection refused"),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "pass    FAIL  a pass cannot run: Redis does not answer"
        );

        report.redis = true;
        assert_eq!(report.exit_code(), exit::OK);
        assert!(report.render().ends_with("pass    ok    a pass can run\n"));

        report.metrics_unwritable = true;
        assert_eq!(report.exit_code(), exit::UNAVAILABLE);
        assert!(report
            .render()
            .ends_with("pass    FAIL  a pass can run but cannot write its metrics file\n"));
        report.pushgateway_unreachable = true;
        assert!(report.render().ends_with(
            "pass    FAIL  a pass can run but cannot write its metrics file nor push its metrics\n"
        ));
        report.metrics_unwritable = false;
        assert_eq!(report.exit_code(), exit::UNAVAILABLE);
        assert!(report
            .render()
            .ends_with("pass    FAIL  a pass can run but cannot push its metrics\n"));
        report.pushgateway_unreachable = false;

        report.config_error = true;
        assert_eq!(report.exit_code(), exit::USAGE);
    }
}
