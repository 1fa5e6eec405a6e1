//! `settings_addresses`: the URLs and host lists of the settings (`config/`), any text:
//! the masters, `--mesos-master-ip`, the Redis or Sentinel URL, the broker's hosts, the
//! Pushgateway, the shard and the routing key, one per line.

use crate::cli::Settings;
use crate::config::Config;
use std::sync::OnceLock;

/// The defaults, parsed once: clap takes far longer than what is fuzzed.
static DEFAULTS: OnceLock<Settings> = OnceLock::new();

/// Planted wherever the lines of addresses have `%%`; a password the checks look for in
/// every output.
const PLANTED: &str = "Zq9planted";

/// The secrets given as settings of their own.
const MESOS_SECRET: &str = "Zq9mesos";
const BROKER_PASSWORD: &str = "Zq9broker";

/// The lines that hold addresses: masters, master IP, Redis, broker hosts, Pushgateway.
const ADDRESS_LINES: usize = 5;

/// Read or refused with a reason naming no secret: neither the broker's nor Mesos'
/// password, nor a password written in an address (`scheme://user:%%@host`), appears in
/// the configuration's debug form (logged with `--log-level debug`) or in its error.
pub fn settings_addresses(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    // Planted only in the lines of addresses: the shard's and the routing key's errors
    // rightly show what was given.
    let lines: Vec<String> = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| match i < ADDRESS_LINES {
            true => line.replace("%%", PLANTED),
            false => line.to_string(),
        })
        .collect();
    let addresses = lines[..lines.len().min(ADDRESS_LINES)].join("\n");
    let mut lines = lines.into_iter().map(|l| Some(l).filter(|l| !l.is_empty()));
    let mut next = || lines.next().flatten();
    let mut settings = DEFAULTS
        .get_or_init(
            || match crate::cli::parse_from(["asgard-stats", "collect"]) {
                Ok(cli) => cli.settings,
                Err(e) => panic!("the defaults do not parse: {e}"),
            },
        )
        .clone();
    settings.masters = next()
        .map(|l| l.split(',').map(String::from).collect())
        .unwrap_or_default();
    settings.mesos_master_ip = next();
    settings.redis_url = next();
    settings.rabbitmq_host = next();
    settings.pushgateway = next();
    settings.shard = next();
    settings.routing_key = next();
    settings.mesos_principal = Some("principal".into());
    settings.mesos_secret = Some(MESOS_SECRET.into());
    settings.rabbitmq_password = Some(BROKER_PASSWORD.into());
    let said = match Config::from_settings(&settings, |_| None) {
        Ok(config) => format!("{config:?}"),
        Err(e) => {
            let said = e.naming("--setting");
            assert!(!said.is_empty(), "a refusal without a reason");
            said
        }
    };
    // A secret the input itself spells out elsewhere (the fuzzer learns them) may be
    // shown there: a host or a shard is no secret.
    for secret in [MESOS_SECRET, BROKER_PASSWORD] {
        assert!(
            text.contains(secret) || !said.contains(secret),
            "a password in {said:?}"
        );
    }
    if !text.contains(PLANTED) && only_as_passwords(&addresses) {
        assert!(!said.contains(PLANTED), "a URL's password in {said:?}");
    }
}

/// Whether every planted text stands where a URL's password does: `scheme://user:` before
/// it, `@` after it, the user holding none of `/`, `@`, `:`, `,` or a line's end.
fn only_as_passwords(text: &str) -> bool {
    text.match_indices(PLANTED).all(|(at, _)| {
        let after = text[at + PLANTED.len()..].starts_with('@');
        let Some(before) = text[..at].strip_suffix(':') else {
            return false;
        };
        let user_from = before.rfind("://").map(|i| i + 3);
        after && user_from.is_some_and(|from| !before[from..].contains(['/', '@', ':', ',', '\n']))
    })
}
