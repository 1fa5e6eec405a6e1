//! Logging to stderr through `log` and env_logger: plain lines for people, or one JSON
//! object per line (`--log-format json`) for log pipelines. `RUST_LOG` sets the level,
//! `info` by default (the HTTP, TLS and Redis crates log nothing below `warn`: their wire logs
//! can hold secrets). A JSON line always has `time` (RFC 3339, UTC), `level` and
//! `message`; the record's `log` key-values (agent, reason, the summary's counts) become
//! fields of their own, numbers as numbers. Plain lines carry the message only, which
//! already names what the fields hold. Under systemd (stderr is the journal's stream, as
//! `JOURNAL_STREAM` says) each line starts with its sd-daemon priority (`<3>` an error,
//! `<4>` a warning, `<6>` information, `<7>` debug), which journald strips and keeps, so
//! `journalctl -p warning` shows what needs a look.

use crate::cli::LogFormat;
use log::kv::{Key, Value, VisitSource};
use std::io::Write;

pub(crate) fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // The crates that speak to masters, agents, Redis and the broker log requests, headers
    // and raw bytes at debug and trace, which can hold a password (a Location with user
    // info, an AUTH command): whatever RUST_LOG says, they log warnings at most.
    for wire in ["ureq", "ureq_proto", "rustls", "redis", "r2d2"] {
        builder.filter_module(wire, log::LevelFilter::Warn);
    }
    let journal = stderr_is_the_journal(std::env::var("JOURNAL_STREAM").ok().as_deref());
    let priority = move |level: log::Level| if journal { sd_priority(level) } else { "" };
    match format {
        LogFormat::Text => builder.format(move |buf, record| {
            writeln!(
                buf,
                "{}{} {:<5} {}",
                priority(record.level()),
                buf.timestamp_millis(),
                record.level(),
                record.args()
            )
        }),
        LogFormat::Json => builder.format(move |buf, record| {
            let mut line = serde_json::Map::new();
            line.insert("time".into(), buf.timestamp_millis().to_string().into());
            line.insert("level".into(), record.level().as_str().into());
            line.insert("message".into(), record.args().to_string().into());
            line.insert("target".into(), record.target().into());
            let mut fields = JsonFields(&mut line);
            // A visitor that only inserts cannot fail.
            let _ = record.key_values().visit(&mut fields);
            writeln!(
                buf,
                "{}{}",
                priority(record.level()),
                serde_json::Value::Object(line)
            )
        }),
    };
    // A second initialisation (tests) keeps the first logger, which is fine.
    let _ = builder.try_init();
}

/// Whether stderr is the stream `JOURNAL_STREAM` names (`<device>:<inode>`, which systemd
/// sets for a unit whose output goes to the journal): not merely inherited by a child.
fn stderr_is_the_journal(journal_stream: Option<&str>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((device, inode)) = journal_stream.and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    device.parse() == Ok(stderr.dev()) && inode.parse() == Ok(stderr.ino())
}

/// The sd-daemon(3) prefix of a line at `level`.
fn sd_priority(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "<3>",
        log::Level::Warn => "<4>",
        log::Level::Info => "<6>",
        log::Level::Debug | log::Level::Trace => "<7>",
    }
}

/// Copies a record's key-values into the JSON object, numbers as numbers.
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(x) = value.to_f64() {
            serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into)
        } else if let Some(b) = value.to_bool() {
            b.into()
        } else {
            value.to_string().into()
        };
        // A field never replaces time, level or message.
        self.0.entry(key.as_str().to_string()).or_insert(json);
        Ok(())
    }
}
