//! The AMQP message id of a document: the document says which task and reading it is
//! (`<executor_id>@<timestamp>`), and publishing fits that to the 255 bytes an AMQP
//! short string holds; a document's routing key (a template of its fields, see
//! `config::RoutingKey`) is fitted the same way. Here rather than in `stats` because the
//! limit is the wire's.

use crate::wire_limits::SHORT_STR_MAX;

/// A message id or routing key as AMQP can carry it: one over 255 bytes (executor ids of
/// deep Marathon groups) becomes its start, cut on a character boundary, then `~` and the
/// 128-bit FNV-1a digest of the whole id in hex. The same id always gives the same result,
/// distinct ids distinct results, and the start still tells a reader which task it is (and
/// a consistent-hash exchange still spreads fitted keys by task).
pub(crate) fn fit_short_string(id: String) -> String {
    if id.len() <= SHORT_STR_MAX {
        return id;
    }
    let digest = format!("~{:032x}", fnv1a_128(id.as_bytes()));
    let room = SHORT_STR_MAX - digest.len();
    // Index 0 is a boundary, so the search always finds one.
    let cut = (0..=room)
        .rev()
        .find(|&i| id.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}{digest}", &id[..cut])
}

/// 128-bit FNV-1a: stable across hosts and versions, and wide enough that distinct ids
/// do not collide by chance.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET, |hash, &b| {
        (hash ^ u128::from(b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_message_ids_are_shortened_deterministically_and_stay_distinct() {
        let short = "a".repeat(SHORT_STR_MAX);
        assert_eq!(
            fit_short_string(short.clone()),
            short,
            "255 bytes fit as they are"
        );
        let long = |end: &str| format!("{}{end}@1541084157.12885", "é".repeat(200));
        let first = fit_short_string(long("x"));
        assert!(first.len() <= SHORT_STR_MAX, "{}", first.len());
        assert!(first.len() >= SHORT_STR_MAX - 1, "as much as fits is kept");
        assert!(first.starts_with("ééé"), "it still tells the task");
        assert_eq!(first, fit_short_string(long("x")), "deterministic");
        assert_ne!(
            first,
            fit_short_string(long("y")),
            "ids differing at the end"
        );
        assert_ne!(
            fit_short_string(format!("{}@1", "a".repeat(300))),
            fit_short_string(format!("{}@2", "a".repeat(300))),
            "ids differing in the timestamp"
        );
        // Every cut lands on a character boundary (slicing elsewhere would panic),
        // whatever the characters' widths and where they fall.
        for character in ["a", "é", "€", "𝄞"] {
            for shift in 0..4 {
                let id = format!("{}{}@1", "a".repeat(shift), character.repeat(256));
                let fitted = fit_short_string(id.clone());
                assert!(fitted.len() <= SHORT_STR_MAX);
                let digest = format!("~{:032x}", fnv1a_128(id.as_bytes()));
                assert!(fitted.ends_with(&digest), "{fitted}");
            }
        }
        assert_eq!(
            fnv1a_128(b""),
            0x6c62_272e_07bb_0142_62b8_2175_6295_c58d,
            "the published offset basis"
        );
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }
}
