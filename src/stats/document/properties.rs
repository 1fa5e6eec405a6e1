//! Generated agent answers, well-formed and not: parsing and arithmetic never panic, and
//! a published document never holds null, NaN, infinity or a field without its inputs.

use super::*;
use crate::stats::reading::{parse_answer, Entries};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Any JSON number an agent could send: tiny, huge, negative, integral, past 2^53.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>()
            .prop_filter("JSON has no NaN/inf", |x| x.is_finite())
            .prop_map(|x| json!(x)),
        (-1e6f64..1e6).prop_map(|x| json!(x)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(0)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        Just(json!(5e-324)),
    ]
}

/// A statistics value: mostly numbers, sometimes the wrong type.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => number(),
        1 => "[a-z0-9.]{0,8}".prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(json!({"x": [1, 2]})),
        1 => any::<bool>().prop_map(Value::from),
    ]
}

const FIELDS: [&str; 9] = [
    "timestamp",
    "cpus_limit",
    "cpus_soft_limit",
    "mem_soft_limit_bytes",
    "cpus_user_time_secs",
    "cpus_system_time_secs",
    "cpus_throttled_time_secs",
    "mem_rss_bytes",
    "mem_limit_bytes",
];

fn statistics() -> impl Strategy<Value = Value> {
    proptest::collection::vec(proptest::option::of(field()), FIELDS.len()).prop_map(|values| {
        let map = FIELDS
            .iter()
            .zip(values)
            .filter_map(|(name, v)| v.map(|v| (name.to_string(), v)))
            .collect();
        Value::Object(map)
    })
}

fn entry() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (prop_oneof![Just("t.1".to_string()), "[a-z_.-]{0,12}"], statistics())
            .prop_map(|(id, s)| json!({"executor_id": id, "statistics": s})),
        1 => field(),
        1 => statistics().prop_map(|s| json!({"statistics": s})),
        1 => Just(json!({"executor_id": "t.1", "statistics": [1]})),
    ]
}

fn check_document(before: &Reading, now: &Reading) {
    let Outcome::Publish(doc) = compute(Some(before), now, "h:1", true) else {
        return;
    };
    let text = serde_json::to_string(&doc).expect("a document always serializes");
    let value: Value = serde_json::from_str(&text).expect("and reads back");
    let object = value.as_object().expect("an object");
    for (name, v) in object {
        assert!(!v.is_null(), "{name} is null in {text}");
        if let Some(x) = v.as_f64() {
            assert!(x.is_finite(), "{name} = {x}");
        }
    }
    let (b, n) = (&before.sample, &now.sample);
    let has = |name: &str| object.contains_key(name);
    assert!(n.timestamp > b.timestamp && object["period_secs"].as_f64().is_some_and(|p| p >= 0.0));
    assert_eq!(has("mem_bytes"), n.mem_rss_bytes.is_some());
    if has("mem_pct") {
        assert!(n.mem_rss_bytes.is_some() && n.mem_limit_bytes.is_some_and(|l| l > 0));
    }
    if has("cpu_thr_secs") || has("cpu_thr_pct") {
        assert!(b.cpus_throttled_time_secs.is_some() && n.cpus_throttled_time_secs.is_some());
    }
    for limited in [
        "cpu_limit",
        "cpu_limit_raw",
        "cpu_usr_pct",
        "cpu_sys_pct",
        "cpu_pct",
    ] {
        if has(limited) {
            assert!(
                n.cpus_limit.is_some_and(|l| l > EXECUTOR_CPUS),
                "{limited} in {text}"
            );
        }
    }
    for (field, old, new) in [
        ("cpu_usr_secs", b.cpus_user_time_secs, n.cpus_user_time_secs),
        (
            "cpu_sys_secs",
            b.cpus_system_time_secs,
            n.cpus_system_time_secs,
        ),
    ] {
        if has(field) {
            assert!(old.is_some() && new.is_some());
            assert!(
                object[field].as_f64().is_some_and(|d| d >= 0.0),
                "{field} < 0 in {text}"
            );
        }
    }
}

/// 4,000 cases a test run; `PROPTEST_CASES=N` runs longer (as a fuzzing session).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4000)
}

/// Any float a document field could hold, and a few it never does (NaN, infinities,
/// -0.0): serde_json and `to_json` must still agree on them.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>().prop_filter("finite", |x| x.is_finite()),
        2 => -1e6f64..1e6,
        2 => (-1e6f64..1e6).prop_map(|x| (x * 1e5).round() / 1e5),
        // What `round5` makes, over the whole range of `write_five_decimals` and past.
        4 => (any::<bool>(), 0u64..2_000_000_000_000_000)
            .prop_map(|(negative, k)| if negative { -(k as f64) } else { k as f64 } / 1e5),
        1 => (1u64..100_000_000, 0i32..12)
            .prop_map(|(k, shift)| k as f64 * 10f64.powi(shift) / 1e5),
        1 => any::<i64>().prop_map(|n| n as f64),
        1 => any::<u64>().prop_map(|n| (n >> (n % 64)) as f64),
        1 => -1e-300f64..1e-300,
        1 => prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(5e-324),
            Just(f64::MAX),
            Just(-f64::MIN_POSITIVE),
            Just(1e16),
            Just(1e15),
            Just(1.5e-7),
            Just(1e-5),
            Just(9.99999e-6),
            Just(9_999_999_999.999_99),
            Just(10_000_000_000.000_01),
            Just(1541084157.12885),
            Just(0.1 + 0.2),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
        ],
    ]
}

/// Text with everything serde_json escapes or could get wrong: quotes, backslashes,
/// every control character, DEL, multi-byte characters, any Unicode at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.:-]{0,24}",
        "[\"\\\\/\\x00-\\x1f\\x7fa\u{e9}\u{20ac}\u{1f600}]{0,16}",
        any::<String>(),
    ]
}

/// A raw `statistics` object as an agent may send it, spacing and all.
fn raw_statistics() -> impl Strategy<Value = Box<RawValue>> {
    (statistics(), any::<bool>()).prop_map(|(value, pretty)| {
        let text = if pretty {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        };
        RawValue::from_string(text.expect("a Value serializes")).expect("valid JSON")
    })
}

/// Every field of a document, owned, so that a `Document` can borrow it.
#[derive(Debug)]
struct Fields {
    floats: [Option<f64>; 15],
    strings: [String; 3],
    mem_bytes: Option<u64>,
    raw: Option<(Box<RawValue>, Box<RawValue>)>,
    incomplete: bool,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        proptest::array::uniform15(proptest::option::of(float())),
        [text(), text(), text()],
        proptest::option::of(any::<u64>()),
        proptest::option::of((raw_statistics(), raw_statistics())),
        any::<bool>(),
    )
        .prop_map(|(floats, strings, mem_bytes, raw, incomplete)| Fields {
            floats,
            strings,
            mem_bytes,
            raw,
            incomplete,
        })
}

impl Fields {
    fn document(&self) -> Document<'_> {
        let [timestamp, period_secs, ..] = self.floats;
        let f = |i: usize| self.floats[i];
        Document {
            // The two fields that are always there; None stands for a finite value.
            timestamp: timestamp.unwrap_or(1541084157.12885),
            host: &self.strings[0],
            taskname: &self.strings[1],
            appname: self.strings[2].clone(),
            period_secs: period_secs.unwrap_or(60.0),
            cpu_limit_raw: f(2),
            cpu_limit: f(3),
            cpu_usr_secs: f(4),
            cpu_sys_secs: f(5),
            cpu_thr_secs: f(6),
            cpu_usr_host_pct: f(7),
            cpu_sys_host_pct: f(8),
            cpu_host_pct: f(9),
            cpu_usr_pct: f(10),
            cpu_sys_pct: f(11),
            cpu_pct: f(12),
            cpu_thr_pct: f(13),
            mem_bytes: self.mem_bytes,
            mem_pct: f(14),
            stats: self
                .raw
                .as_ref()
                .map(|(before, now)| RawStats { before, now }),
            incomplete: self.incomplete,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// The hand-written `to_json` is byte for byte what serde_json makes of the
    /// derived `Serialize`, the contract's field names, order and omissions included.
    #[test]
    fn to_json_writes_what_serde_json_writes(fields in fields()) {
        let doc = fields.document();
        let reference = serde_json::to_vec(&doc).expect("a document serializes");
        let mut written = Vec::new();
        doc.write_json(&mut written);
        prop_assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&reference)
        );
        prop_assert_eq!(written, reference);
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_answer(&bytes, Entries::Kept);
        let _ = parse_answer(&bytes, Entries::Dropped);
    }

    #[test]
    fn any_answer_parses_and_computes_safely(
        entries in proptest::collection::vec(entry(), 0..6),
        later in proptest::collection::vec(entry(), 0..6),
    ) {
        let text = Value::Array(entries.clone()).to_string();
        let first = parse_answer(text.as_bytes(), Entries::Kept)
            .expect("an array is always an answer");
        let dropped = parse_answer(text.as_bytes(), Entries::Dropped)
            .expect("an array is always an answer");
        crate::stats::reading::tests::assert_same(&first, &dropped);
        let second = parse_answer(Value::Array(later).to_string().as_bytes(), Entries::Kept)
            .expect("an array is always an answer");
        prop_assert_eq!(first.readings.len() + first.skipped, entries.len());
        for before in &first.readings {
            for now in &second.readings {
                check_document(before, now);
                check_document(now, before);
            }
        }
    }
}
