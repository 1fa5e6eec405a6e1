//! The one way a URL or host string given by the operator (a master, Redis, a broker, a
//! redirect's `Location`) is shown in an error or a log line: parsed, its user info
//! replaced, its query dropped, and a fixed placeholder when it cannot be parsed, so a
//! password never reaches a message whatever shape the setting has.
//!
//! It errs towards hiding: everything before the last `@` counts as user info, so a
//! password holding `/` (`redis://:a/b@host/0`) is hidden even though a URL parser would
//! end the authority at that `/`.

/// What stands in for user info.
const HIDDEN: &str = "<redacted>";
/// What stands in for a whole string that cannot be shown safely.
pub(crate) const UNREADABLE: &str = "<unreadable address>";

/// `text` as it may appear in a message: `scheme://<redacted>@host:port/path`.
pub(crate) fn url(text: &str) -> String {
    shown(text.trim()).unwrap_or_else(|| UNREADABLE.to_string())
}

/// [`url`] for a setting that holds secrets (the Redis URL, the Pushgateway URL): a value
/// without a `scheme://` is not shown at all, since it may be the secret itself (a
/// password set in the wrong variable, a file holding only a password).
pub(crate) fn secret_url(text: &str) -> String {
    if text.contains("://") {
        url(text)
    } else {
        UNREADABLE.to_string()
    }
}

fn shown(text: &str) -> Option<String> {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
        Some(_) => return None,
        None => (None, text),
    };
    let (had_user, rest) = match rest.rfind('@') {
        Some(at) => (true, &rest[at + 1..]),
        None => (false, rest),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // Several hosts, comma-separated: the sentinels of a `redis+sentinel://` URL.
    if !authority.split(',').all(is_authority) {
        return None;
    }
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = &tail[..path_end];
    if !path.chars().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if had_user {
        out.push_str(HIDDEN);
        out.push('@');
    }
    out.push_str(authority);
    out.push_str(path);
    if path_end < tail.len() {
        out.push_str(if tail[path_end..].starts_with('?') {
            "?"
        } else {
            "#"
        });
        out.push_str(HIDDEN);
    }
    Some(out)
}

fn is_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A host name, an IPv4 address or a bracketed IPv6 address, with an optional port.
fn is_authority(authority: &str) -> bool {
    let (host, port) = split_host_port(authority);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":.%".contains(c))
        }
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~%".contains(c))
        }
    };
    host_ok
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()))
}

/// `host[:port]` split at the port's colon; a bracketed IPv6 host keeps its colons.
pub(crate) fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    let host_end = match authority.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(authority.len(), |i| i + 2),
        None => authority.find(':').unwrap_or(authority.len()),
    };
    let (host, rest) = authority.split_at(host_end);
    match rest.strip_prefix(':') {
        Some(port) => (host, Some(port)),
        None if rest.is_empty() => (host, None),
        // Something after a bracketed host that is not a port: unreadable as a whole.
        None => (authority, Some("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_hidden_and_the_rest_kept() {
        let cases = [
            ("redis://127.0.0.1/0", "redis://127.0.0.1/0"),
            ("rediss://u:p@h:1/2", "rediss://<redacted>@h:1/2"),
            ("redis://u@h", "redis://<redacted>@h"),
            ("redis://:a/b@host/0", "redis://<redacted>@host/0"),
            ("redis://:a@b@host:6379/0", "redis://<redacted>@host:6379/0"),
            ("http://user:pw@host:5050", "http://<redacted>@host:5050"),
            ("amqp://user:pw@host/", "amqp://<redacted>@host/"),
            ("redis://h/0?password=pw", "redis://h/0?<redacted>"),
            ("http://h/#pw", "http://h/#<redacted>"),
            ("mq.example:5672", "mq.example:5672"),
            ("[::1]:5673", "[::1]:5673"),
            ("amqps://[fe80::1%eth0]", "amqps://[fe80::1%eth0]"),
            ("  10.0.0.1:5050 ", "10.0.0.1:5050"),
            (
                "redis+sentinel://:pw@s1:26379,[::1]/mymaster/2?sentinel_password=pw",
                "redis+sentinel://<redacted>@s1:26379,[::1]/mymaster/2?<redacted>",
            ),
        ];
        for (input, shown) in cases {
            assert_eq!(url(input), shown, "{input}");
        }
    }

    #[test]
    fn a_secret_setting_without_a_scheme_is_not_shown() {
        assert_eq!(secret_url("hunter2"), UNREADABLE);
        assert_eq!(secret_url("10.0.0.1:6379"), UNREADABLE);
        assert_eq!(secret_url("redis://:pw@h/0"), "redis://<redacted>@h/0");
    }

    #[test]
    fn what_cannot_be_parsed_is_a_placeholder() {
        for input in [
            "",
            "pw:secret",
            "host:port:pw",
            "1x://h",
            "http://",
            "http://h o/",
            "http://h/pa th",
            "[::1]pw",
            "http://h:123456",
            "h\u{e9}:1",
            "redis+sentinel://s1,,s2/m",
            "redis+sentinel://s1,pw:x/m",
        ] {
            assert_eq!(url(input), UNREADABLE, "{input:?}");
        }
    }
}
