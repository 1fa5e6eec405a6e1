//! The broker floor: the fastest one AMQP connection can get N persistent, confirmed
//! messages of a given size into the broker's queues, for `scripts/bench`: one queue
//! behind the default exchange, or the queues bound to an exchange (`--exchange`, with
//! `--key-per-message` for a consistent-hash exchange), so each topology has its floor.
//!
//! A collecting pass can never deliver its documents faster than this, so the benchmark
//! compares the pass's wall time with this floor (the target is `wall <= 1.3 x floor`).
//! The example publishes the way the collector does: one connection and one channel,
//! publisher confirms on, exchange `""` with the routing key, `mandatory`, properties
//! `content_type: application/json`, `delivery_mode: 2` and a unique `message_id`
//! (with `--exchange`, to that exchange; with `--key-per-message`, each message under a
//! routing key of its own, as `{taskname}` gives each task's documents), in
//! batches (one per agent in the collector) of which up to `--in-flight` (the collector's
//! worker count) wait for their confirms at once. It does none of the collector's other
//! work (no Mesos, no Redis, no JSON encoding per document), and declares nothing: the
//! queue named like the routing key, or the exchange and its queues, must exist.
//!
//! The length of the message ids matters: RabbitMQ (3.10, Erlang 25) takes about 25% more
//! CPU per message once the encoded properties exceed 64 bytes (Erlang's limit for
//! binaries kept on the process heap), which with `application/json` and persistence is a
//! message id of 44 bytes or more. The collector's ids (`<executor_id>@<timestamp>`) are
//! longer than that, so `--message-id-len` (default 64) should be their average length.
//!
//! ```text
//! cargo run --release --example broker_floor -- --host 127.0.0.1:5673 \
//!     --routing-key bench --docs 50000 --size 600 [--batch 50] [--in-flight 32] \
//!     [--message-id-len 64] [--exchange NAME [--key-per-message]]
//! ```
//!
//! prints `floor: docs=N size=BYTES seconds=S docs_per_sec=R`, timed from the first
//! publish to the last confirm.

// The collector's own AMQP client, so the floor pays no more client CPU than a pass does
// (both share the machine's two cores with the broker).
#[path = "../src/broker/amqp/mod.rs"]
#[allow(dead_code, unused_imports)] // a publisher needs less of the module than the collector
mod amqp;
// The wire limits the client keeps, a leaf of constants beside it in the crate.
#[path = "../src/wire_limits.rs"]
mod wire_limits;

use amqp::{Event, Login, Message, Session};
use clap::Parser;
use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Publish N confirmed messages as fast as one connection allows and print the time.
#[derive(Parser)]
struct Args {
    /// The broker, HOST:PORT (user guest/guest, vhost /).
    #[arg(long)]
    host: String,
    /// Speak TLS, trusting this PEM CA (the certificate must name HOST), as the
    /// collector does for an amqps:// broker.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Routing key (on the default exchange, the queue of that name must exist); with
    /// --key-per-message, the start of each message's key.
    #[arg(long)]
    routing_key: String,
    /// Exchange to publish to ("" is the default exchange); it must exist, with queues
    /// bound to it.
    #[arg(long, default_value = "")]
    exchange: String,
    /// Each message under a routing key of its own, `<routing-key>.<message id>` (as
    /// the collector's `{taskname}` keys): what a consistent-hash exchange spreads.
    #[arg(long)]
    key_per_message: bool,
    /// Messages to publish.
    #[arg(long)]
    docs: u64,
    /// Size of each message body, in bytes.
    #[arg(long)]
    size: usize,
    /// Messages per batch (the collector publishes one batch per agent).
    #[arg(long, default_value_t = 50)]
    batch: u64,
    /// Batches waiting for their confirms at once (the collector's --workers).
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Length of each message id, in bytes (at least 24).
    #[arg(long, default_value_t = 64)]
    message_id_len: usize,
    /// Give up when no confirm arrives for this many seconds.
    #[arg(long, default_value_t = 30)]
    confirm_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.batch == 0 || args.in_flight == 0 {
        eprintln!("broker_floor: --batch and --in-flight must be at least 1");
        return ExitCode::from(2);
    }
    if args.size < MIN_SIZE {
        eprintln!("broker_floor: --size must be at least {MIN_SIZE} (a JSON object)");
        return ExitCode::from(2);
    }
    if args.message_id_len < MIN_ID_LEN {
        eprintln!("broker_floor: --message-id-len must be at least {MIN_ID_LEN}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(seconds) => {
            let rate = if seconds > 0.0 {
                args.docs as f64 / seconds
            } else {
                0.0
            };
            println!(
                "floor: docs={} size={} seconds={seconds:.3} docs_per_sec={rate:.0}",
                args.docs, args.size
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("broker_floor: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the connection like the collector does (TCP_NODELAY, TLS with --ca-file, PLAIN
/// login, vhost `/`).
fn connect(args: &Args) -> Result<Session, String> {
    let (host, port) = args
        .host
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.trim_matches(['[', ']']), port.parse().ok()?)))
        .ok_or_else(|| format!("--host {} is not HOST:PORT", args.host))?;
    let tls = args
        .ca_file
        .as_deref()
        .map(|ca| amqp::transport::client_config(Some(ca)))
        .transpose()?;
    let link = amqp::transport::connect(host, port, tls.as_ref(), Duration::from_secs(10))
        .map_err(|e| format!("{}: {e}", args.host))?;
    let login = Login {
        user: "guest",
        password: "guest",
        vhost: "/",
    };
    Session::open(link, &login).map_err(|e| format!("cannot open the AMQP connection: {e}"))
}

/// The smallest body: `{"pad":""}`.
const MIN_SIZE: usize = 10;

/// A JSON object of exactly `size` bytes (`size >= MIN_SIZE`): `{"pad":"xxx…"}`.
fn body(size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(br#"{"pad":""#);
    body.resize(size.max(MIN_SIZE) - 2, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

/// The shortest message id: a run id of up to 16 hex digits, `-`, a count of up to 7.
const MIN_ID_LEN: usize = 24;

/// A message id of exactly `len` bytes (`len >= MIN_ID_LEN`), unique per run and count:
/// `<run>-<count>` padded with `x`, which no digit can be confused with.
fn message_id(run: u64, count: u64, len: usize) -> String {
    let mut id = format!("{run:x}-{count}");
    while id.len() < len {
        id.push('x');
    }
    id
}

/// Publishes everything and returns the seconds from the first publish to the last
/// confirm.
fn run(args: &Args) -> Result<f64, String> {
    let mut session = connect(args)?;
    session
        .enable_confirms()
        .map_err(|e| format!("cannot enable publisher confirms: {e}"))?;
    let (mut writer, mut reader) = session.split().map_err(|e| e.to_string())?;
    let (events, event_queue) = std::sync::mpsc::channel::<Vec<Event>>();
    std::thread::spawn(move || loop {
        let batch = reader.next_events();
        let closed = matches!(batch.last(), Some(Event::Closed(_)));
        if events.send(batch).is_err() || closed {
            break;
        }
    });

    let body = body(args.size);
    // Truncating to 64 bits keeps the part that changes between runs.
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let confirm_timeout = Duration::from_secs(args.confirm_timeout);
    // Delivery tags count from 1 once confirms are on; `unconfirmed` holds the tags sent
    // and not yet settled, `open` the (first, last) tags of each unsettled batch.
    let mut unconfirmed = BTreeSet::new();
    let mut open: VecDeque<(u64, u64)> = VecDeque::new();
    let (mut sent, mut nacked, mut returned) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while sent < args.docs || !open.is_empty() {
        if sent < args.docs && open.len() < args.in_flight {
            let first = sent + 1;
            let count = args.batch.min(args.docs - sent);
            for _ in 0..count {
                sent += 1;
                let id = message_id(run_id, sent, args.message_id_len);
                let key = if args.key_per_message {
                    Cow::Owned(format!("{}.{id}", args.routing_key))
                } else {
                    Cow::Borrowed(args.routing_key.as_str())
                };
                writer
                    .push(&Message {
                        exchange: &args.exchange,
                        routing_key: &key,
                        message_id: &id,
                        body: &body,
                    })
                    .map_err(|e| format!("publish {sent}: {e}"))?;
                unconfirmed.insert(sent);
            }
            // One write per batch, as the collector does.
            writer.flush().map_err(|e| format!("publish {sent}: {e}"))?;
            open.push_back((first, sent));
            continue;
        }
        let batch = event_queue
            .recv_timeout(confirm_timeout)
            .map_err(|e| format!("no confirm within {confirm_timeout:?}: {e}"))?;
        for event in batch {
            match event {
                Event::Confirm { tag, multiple, ack } => {
                    let settled: Vec<u64> = if multiple {
                        unconfirmed.range(..=tag).copied().collect()
                    } else {
                        vec![tag]
                    };
                    for tag in settled {
                        if unconfirmed.remove(&tag) && !ack {
                            nacked += 1;
                        }
                    }
                }
                Event::Returned { .. } => returned += 1,
                Event::Closed(why) => return Err(format!("the connection closed: {why}")),
                Event::Blocked(_) | Event::Unblocked => {}
            }
        }
        open.retain(|&(first, last)| unconfirmed.range(first..=last).next().is_some());
    }
    let seconds = started.elapsed().as_secs_f64();
    // Closing is not timed: the collector closes after its last confirm too.
    let _ = writer.close();
    if returned > 0 || nacked > 0 {
        return Err(format!(
            "{returned} messages returned as unroutable (does queue {:?} exist, or a queue bound to exchange {:?}?), {nacked} nacked",
            args.routing_key, args.exchange
        ));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_have_the_exact_length_and_are_unique() {
        let ids: Vec<String> = [1, 9, 10, 99, 100, 9_999_999]
            .into_iter()
            .map(|n| message_id(u64::MAX, n, MIN_ID_LEN))
            .collect();
        assert!(ids.iter().all(|id| id.len() == MIN_ID_LEN), "{ids:?}");
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(message_id(0xab, 7, 30), format!("ab-7{}", "x".repeat(26)));
    }

    #[test]
    fn bodies_have_the_exact_size_and_are_json() {
        for size in [10, 11, 600, 4096] {
            let body = body(size);
            assert_eq!(body.len(), size);
            let parsed: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert!(parsed["pad"].is_string());
        }
    }
}
