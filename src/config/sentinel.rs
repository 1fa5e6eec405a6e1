//! The Sentinel form of `STATS_COLLECTOR_REDIS_URL` (docs/configuration.md, "Redis
//! Sentinel"): `redis+sentinel://[[user]:password@]host1:26379,host2:26379/<master-name>[/<db>]`, and
//! `rediss+sentinel://` for TLS to the sentinels and the master. Read here, with the rest
//! of the configuration, so that a bad URL is exit 2 before anything is contacted;
//! `state/sentinel.rs` does the asking.
//!
//! The user info is the master's (as in `redis://`). Sentinels that want a login of their
//! own get it from the query: `?sentinel_password=...&sentinel_username=...`,
//! percent-encoded. The query keeps both secrets in the one setting that already has a
//! `_FILE` form, and messages never show a query.

use super::{redact, Secret};
use percent_encoding::percent_decode_str;

/// A sentinel's port when the URL gives none.
const SENTINEL_PORT: u16 = 26379;

/// Whether `url` asks for Sentinel (its form is checked by [`parse`]).
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    url.starts_with("redis+sentinel://") || url.starts_with("rediss+sentinel://")
}

/// A Sentinel URL, read.
#[derive(Clone, Debug, Default)]
pub(crate) struct SentinelSettings {
    /// `(host, port)`, an IPv6 host without brackets, in the order they are asked.
    pub(crate) sentinels: Vec<(String, u16)>,
    pub(crate) master_name: String,
    pub(crate) db: i64,
    /// TLS to the sentinels and the master.
    pub(crate) tls: bool,
    /// The master's (and its replicas') login.
    pub(crate) master_login: RedisLogin,
    /// The sentinels' own login, if they want one.
    pub(crate) sentinel_login: RedisLogin,
}

/// A Redis user and password; either may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RedisLogin {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
}

/// Reads a Sentinel URL; the error never holds a part of its user info or query.
pub(crate) fn parse(url: &str) -> Result<SentinelSettings, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
        (true, rest)
    } else {
        return Err("must start with redis+sentinel:// or rediss+sentinel://".into());
    };
    // As in redact.rs: everything before the last `@` is user info, so a password
    // holding `/` or `,` cannot be read as a host.
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    if rest.contains('#') {
        return Err("a fragment (#...) is not understood".into());
    }
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let sentinels = hosts
        .split(',')
        .map(sentinel_address)
        .collect::<Result<Vec<_>, _>>()?;
    let (master_name, db) = path.split_once('/').unwrap_or((path, ""));
    if master_name.is_empty() {
        return Err("the master's name is missing: .../<master-name>[/<db>]".into());
    }
    let master_name = decode(master_name).ok_or("the master's name is not UTF-8")?;
    let db = match db.trim_end_matches('/') {
        "" => 0,
        db => db
            .parse()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or("the database after the master's name must be a number")?,
    };
    let master_login = match userinfo {
        None => RedisLogin::default(),
        Some(userinfo) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let unreadable = "the user and password cannot be read (percent-encode them)";
            RedisLogin {
                username: Some(decode(user).ok_or(unreadable)?).filter(|u| !u.is_empty()),
                password: password
                    .map(|p| decode(p).map(Secret).ok_or(unreadable))
                    .transpose()?,
            }
        }
    };
    let mut sentinel_login = RedisLogin::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value =
            decode(value).ok_or_else(|| format!("the query parameter {key} is not UTF-8"))?;
        match key {
            "sentinel_password" => sentinel_login.password = Some(Secret(value)),
            "sentinel_username" => sentinel_login.username = Some(value),
            _ => {
                return Err(format!(
                    "unknown query parameter {:?}: only sentinel_username and \
                     sentinel_password are understood",
                    key.chars().take(32).collect::<String>()
                ))
            }
        }
    }
    Ok(SentinelSettings {
        sentinels,
        master_name,
        db,
        tls,
        master_login,
        sentinel_login,
    })
}

/// Percent-decoded text; None when the bytes are not UTF-8.
fn decode(text: &str) -> Option<String> {
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|t| t.into_owned())
}

/// `host:port` of one sentinel of the URL (port 26379 by default), an IPv6 address in
/// brackets.
fn sentinel_address(entry: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "sentinel {}: expected host[:port], an IPv6 address in brackets",
            redact::url(entry)
        )
    };
    if entry.is_empty() || redact::url(entry) == redact::UNREADABLE {
        return Err(bad());
    }
    let (host, port) = redact::split_host_port(entry);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = match port {
        None => SENTINEL_PORT,
        Some(port) => port.parse().map_err(|_| bad())?,
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_are_read() {
        let url = parse(
            "rediss+sentinel://app:p%40ss@s1,[::1]:26380,s3:1/my%20master/3\
             ?sentinel_password=s%2Fp&sentinel_username=watch",
        )
        .expect("valid");
        assert_eq!(
            url.sentinels,
            [
                ("s1".to_string(), 26379),
                ("::1".to_string(), 26380),
                ("s3".to_string(), 1)
            ]
        );
        assert_eq!((url.master_name.as_str(), url.db), ("my master", 3));
        assert!(url.tls);
        let login = |user: Option<&str>, password: Option<&str>| RedisLogin {
            username: user.map(str::to_string),
            password: password.map(|p| Secret(p.to_string())),
        };
        assert_eq!(url.master_login, login(Some("app"), Some("p@ss")));
        assert_eq!(url.sentinel_login, login(Some("watch"), Some("s/p")));
        let shown = format!("{url:?}");
        assert!(!shown.contains("p@ss") && !shown.contains("s/p"), "{shown}");

        let plain = parse("redis+sentinel://:pw@10.0.0.1:26379/mymaster").expect("ok");
        assert!(!plain.tls);
        assert_eq!((plain.master_name.as_str(), plain.db), ("mymaster", 0));
        assert_eq!(plain.master_login, login(None, Some("pw")));
        assert_eq!(plain.sentinel_login, RedisLogin::default(), "no login");
        let user_only = parse("redis+sentinel://app@s1/m/").expect("ok");
        assert_eq!(user_only.master_login, login(Some("app"), None));
    }

    #[test]
    fn bad_sentinel_urls_say_why_without_their_secrets() {
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1:26379/m/x",
            "redis+sentinel://s1:26379/m/-1",
            "redis+sentinel://:s3cret@s1,,s2/m",
            "redis+sentinel://s1:s3cret/m",
            "redis+sentinel://s1/m?sentinel_pass=s3cret",
            "redis+sentinel://s1/m#s3cret",
            "redis+sentinel://:%ff%fes3cret@s1/m",
            "redis://s1/m",
        ] {
            let why = parse(bad).expect_err(bad);
            assert!(!why.contains("s3cret"), "{bad}: {why}");
        }
    }
}
