//! The replies `sentinel.rs` acts on, read: the master a sentinel names for
//! `SENTINEL get-master-addr-by-name`, and whether a node's `ROLE` says master. Any reply
//! is read or refused with a reason (fuzzed: `fuzz/`, `sentinel_reply`).

use redis::Value;

/// The master a sentinel names: None when it knows no master of that name (a nil reply),
/// else its host and port. Anything but a host and a port of digits in 1..=65535 is
/// refused: a connection to what it would name could only fail later, less clearly.
pub(crate) fn named_master(reply: &Value) -> Result<Option<(String, u16)>, String> {
    let parts = match reply {
        Value::Nil => return Ok(None),
        Value::Array(parts) => parts,
        _ => return Err("a reply that is no address".into()),
    };
    let [host, port] = parts.as_slice() else {
        return Err(format!("an address of {} parts, not 2", parts.len()));
    };
    let host = match host {
        Value::BulkString(host) => std::str::from_utf8(host).ok(),
        _ => None,
    };
    let host = host
        .filter(|h| !h.is_empty() && !h.chars().any(|c| c.is_whitespace() || c.is_control()))
        .ok_or("a host that is no host name nor address")?;
    let port = match port {
        Value::BulkString(digits) => port_of_digits(digits),
        Value::Int(n) => u16::try_from(*n).ok().filter(|&p| p > 0),
        _ => None,
    }
    .ok_or("a port that is not 1 to 65535")?;
    Ok(Some((host.to_string(), port)))
}

/// A port written in decimal digits only (`+7` is no port), 1 to 65535.
fn port_of_digits(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .filter(|&p| p > 0)
}

/// Whether a `ROLE` reply says master: an array whose first element is `master`.
pub(crate) fn says_master(role: &Value) -> bool {
    matches!(
        role,
        Value::Array(role) if matches!(role.first(), Some(Value::BulkString(word)) if word == b"master")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn a_master_is_a_host_and_a_port_of_digits() {
        let named =
            |host: &str, port: &str| named_master(&Value::Array(vec![bulk(host), bulk(port)]));
        assert_eq!(
            named("10.0.0.7", "6379"),
            Ok(Some(("10.0.0.7".into(), 6379)))
        );
        assert_eq!(named("::1", "6380"), Ok(Some(("::1".into(), 6380))));
        assert_eq!(named_master(&Value::Nil), Ok(None));
        for (host, port) in [
            ("h", "+7"),
            ("h", "0"),
            ("h", "65536"),
            ("h", ""),
            ("", "1"),
            ("a b", "1"),
        ] {
            assert!(named(host, port).is_err(), "{host:?} {port:?}");
        }
        assert!(named_master(&Value::Array(vec![bulk("h")])).is_err());
        assert!(named_master(&Value::Okay).is_err());
    }

    #[test]
    fn only_a_role_of_master_is_a_master() {
        assert!(says_master(&Value::Array(vec![
            bulk("master"),
            Value::Int(0)
        ])));
        assert!(!says_master(&Value::Array(vec![bulk("slave")])));
        assert!(!says_master(&Value::Array(vec![])));
        assert!(!says_master(&bulk("master")));
    }
}
