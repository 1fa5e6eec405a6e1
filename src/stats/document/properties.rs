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

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

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
