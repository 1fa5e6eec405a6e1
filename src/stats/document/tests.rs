//! Unit tests of `document.rs`: the arithmetic of one document, its rounding, and the JSON
//! written by hand.

use super::*;
use crate::stats::reading::parse_entry;

fn reading(id: &str, statistics: &str) -> Reading {
    let entry = format!(r#"{{"executor_id":"{id}","statistics":{statistics}}}"#);
    parse_entry(entry.into()).expect("valid entry")
}

fn document(before: &str, now: &str) -> serde_json::Value {
    let (b, n) = (reading("g_a.1", before), reading("g_a.1", now));
    match compute(Some(&b), &n, "h:5051", false) {
        Outcome::Publish(doc) => serde_json::to_value(&doc).expect("serializes"),
        other => panic!("expected a document, got {other:?}"),
    }
}

#[test]
fn rounds_half_away_from_zero_on_the_decimal() {
    let cases = [
        (0.35 - 0.1, 0.25),
        (0.7 - 0.1, 0.6),
        (0.9 - 0.1, 0.8),
        (1.000005, 1.00001),
        (1.000004999, 1.0),
        (-1.000005, -1.00001),
        (2.675, 2.675),
        (0.000005, 0.00001),
        (0.0000049, 0.0),
        (-0.0000049, 0.0),
        (12345678901.234565, 12345678901.23457),
        (1e300, 1e300),
        (1e-300, 0.0),
        (10.550000000000004, 10.55),
        (73.17724500000001, 73.17725),
    ];
    for (input, expected) in cases {
        assert_eq!(round5(input), Some(expected), "round5({input:e})");
    }
    assert_eq!(round5(f64::NAN), None);
    assert_eq!(round5(f64::INFINITY), None);
    assert!(round5(-0.0000001).is_some_and(|r| r.is_sign_positive()));
}

#[test]
fn fast_and_decimal_paths_agree() {
    // Every value the fast path takes must round as the digits do.
    let mut x = 0.123456789_f64;
    for i in 0..20_000 {
        x = (x * 1.618033988749 + i as f64 * 0.000731).fract() * 10f64.powi(i % 12 - 3);
        assert_eq!(
            round5(x),
            Some(round5_decimal(x)).map(|r| r + 0.0),
            "x = {x:e}"
        );
    }
}

#[test]
fn first_sighting_repeat_and_reset_publish_nothing() {
    let n = reading("t", r#"{"timestamp": 10, "cpus_user_time_secs": 5}"#);
    assert!(matches!(
        compute(None, &n, "h", false),
        Outcome::FirstSighting
    ));
    let same = reading("t", r#"{"timestamp": 10, "cpus_user_time_secs": 6}"#);
    assert!(matches!(
        compute(Some(&n), &same, "h", false),
        Outcome::NotNewer
    ));
    let older = reading("t", r#"{"timestamp": 9, "cpus_user_time_secs": 6}"#);
    assert!(matches!(
        compute(Some(&n), &older, "h", false),
        Outcome::NotNewer
    ));
    let restarted = reading("t", r#"{"timestamp": 11, "cpus_user_time_secs": 1}"#);
    assert!(matches!(
        compute(Some(&n), &restarted, "h", false),
        Outcome::Reset
    ));
    let thr_b = reading("t", r#"{"timestamp": 1, "cpus_throttled_time_secs": 5}"#);
    let thr_n = reading("t", r#"{"timestamp": 2, "cpus_throttled_time_secs": 4}"#);
    assert!(matches!(
        compute(Some(&thr_b), &thr_n, "h", false),
        Outcome::Reset
    ));
    let sys_b = reading("t", r#"{"timestamp": 1, "cpus_system_time_secs": 5}"#);
    let sys_n = reading("t", r#"{"timestamp": 2, "cpus_system_time_secs": 4.9}"#);
    assert!(matches!(
        compute(Some(&sys_b), &sys_n, "h", false),
        Outcome::Reset
    ));
}

#[test]
fn missing_inputs_leave_fields_out() {
    // Only timestamps: no CPU or memory field at all, never zeros.
    let b = reading("g_a.1", r#"{"timestamp": 1}"#);
    let n = reading("g_a.1", r#"{"timestamp": 3}"#);
    let Outcome::Publish(doc) = compute(Some(&b), &n, "h:5051", false) else {
        panic!("expected a document");
    };
    assert_eq!(
        serde_json::to_string(&doc).expect("serializes"),
        r#"{"timestamp":3.0,"host":"h:5051","taskname":"g_a.1","appname":"/g/a","period_secs":2.0}"#
    );
}

#[test]
fn cfs_off_in_either_reading_drops_throttling() {
    let with = r#"{"timestamp": 1, "cpus_user_time_secs": 1, "cpus_throttled_time_secs": 1}"#;
    let without = r#"{"timestamp": 2, "cpus_user_time_secs": 2}"#;
    for (b, n) in [(with, without), (without.replace('2', "0").as_str(), with)] {
        let doc = document(b, n);
        assert!(doc.get("cpu_thr_secs").is_none() && doc.get("cpu_thr_pct").is_none());
    }
    let doc = document(
        with,
        r#"{"timestamp": 3, "cpus_user_time_secs": 2, "cpus_throttled_time_secs": 1.5}"#,
    );
    assert_eq!(doc["cpu_thr_secs"], 0.5);
    assert_eq!(doc["cpu_thr_pct"], 25.0);
}

#[test]
fn cpu_limit_missing_or_at_most_the_executor_share_drops_limit_fields() {
    let base = r#"{"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}"#;
    for limit in [
        "",
        r#", "cpus_limit": 0.1"#,
        r#", "cpus_limit": 0.05"#,
        r#", "cpus_limit": 0"#,
        r#", "cpus_limit": -2"#,
    ] {
        let now = format!(
            r#"{{"timestamp": 2, "cpus_user_time_secs": 2, "cpus_system_time_secs": 1.5{limit}}}"#
        );
        let doc = document(base, &now);
        for field in [
            "cpu_limit",
            "cpu_limit_raw",
            "cpu_usr_pct",
            "cpu_sys_pct",
            "cpu_pct",
        ] {
            assert!(doc.get(field).is_none(), "{field} with limit {limit:?}");
        }
        assert_eq!(doc["cpu_usr_host_pct"], 100.0);
        assert_eq!(doc["cpu_sys_host_pct"], 50.0);
        assert_eq!(doc["cpu_host_pct"], 150.0);
    }
}

#[test]
fn cpu_limit_keeps_its_decimals() {
    let doc = document(
        r#"{"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}"#,
        r#"{"timestamp": 2, "cpus_user_time_secs": 1.25, "cpus_system_time_secs": 1, "cpus_limit": 0.35}"#,
    );
    assert_eq!(doc["cpu_limit_raw"], 0.35);
    assert_eq!(doc["cpu_limit"], 0.25);
    assert_eq!(doc["cpu_pct"], 100.0);
    assert_eq!(doc["cpu_usr_pct"], 100.0);
    assert_eq!(doc["cpu_sys_pct"], 0.0);
}

#[test]
fn soft_limits_give_cpu_and_memory_percentages_and_completeness() {
    let b = r#"{"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}"#;
    let n = r#"{"timestamp": 2, "cpus_user_time_secs": 1.5, "cpus_system_time_secs": 1,
            "cpus_soft_limit": 1.1, "mem_rss_bytes": 256, "mem_soft_limit_bytes": 1024}"#;
    let doc = document(b, n);
    assert_eq!(doc["cpu_limit_raw"], 1.1);
    assert_eq!(doc["cpu_limit"], 1.0);
    assert_eq!(doc["cpu_pct"], 50.0);
    assert_eq!(doc["mem_pct"], 25.0);
    let complete = |now: &str| {
        let (b, n) = (reading("g_a.1", b), reading("g_a.1", now));
        match compute(Some(&b), &n, "h", false) {
            Outcome::Publish(doc) => doc.is_complete(),
            other => panic!("expected a document, got {other:?}"),
        }
    };
    assert!(complete(n));
    assert!(!complete(
        r#"{"timestamp": 2, "cpus_user_time_secs": 2, "cpus_system_time_secs": 1, "mem_rss_bytes": 1, "mem_limit_bytes": 2}"#
    ));
    assert!(!complete(
        r#"{"timestamp": 2, "cpus_user_time_secs": 2, "cpus_system_time_secs": 1, "cpus_limit": 1.1, "mem_rss_bytes": 1}"#
    ));
}

#[test]
fn memory_fields_need_their_inputs() {
    let b = r#"{"timestamp": 1}"#;
    let doc = document(
        b,
        r#"{"timestamp": 2, "mem_rss_bytes": 50, "mem_limit_bytes": 0}"#,
    );
    assert_eq!(doc["mem_bytes"], 50);
    assert!(doc.get("mem_pct").is_none());
    let doc = document(b, r#"{"timestamp": 2, "mem_limit_bytes": 100}"#);
    assert!(doc.get("mem_bytes").is_none() && doc.get("mem_pct").is_none());
    let doc = document(b, r#"{"timestamp": 2, "mem_rss_bytes": 50}"#);
    assert!(doc.get("mem_pct").is_none());
    let doc = document(
        b,
        r#"{"timestamp": 2, "mem_rss_bytes": 9007199254740993, "mem_limit_bytes": 18014398509481986}"#,
    );
    assert_eq!(
        doc["mem_bytes"].as_u64(),
        Some(9007199254740993),
        "exact past 2^53"
    );
    assert_eq!(doc["mem_pct"], 50.0);
}

#[test]
fn huge_numbers_never_become_infinite_fields() {
    let doc = document(
        r#"{"timestamp": 1, "cpus_user_time_secs": -1.7e308, "cpus_limit": 1e308}"#,
        r#"{"timestamp": 1.000001, "cpus_user_time_secs": 1.7e308, "cpus_limit": 1e308}"#,
    );
    for (name, value) in doc.as_object().expect("object") {
        if let Some(x) = value.as_f64() {
            assert!(x.is_finite(), "{name} = {x}");
        }
    }
    assert!(doc.get("cpu_usr_secs").is_none(), "inf delta is left out");
    let b = reading("t", r#"{"timestamp": -1.7e308}"#);
    let n = reading("t", r#"{"timestamp": 1.7e308}"#);
    assert!(matches!(
        compute(Some(&b), &n, "h", false),
        Outcome::NotNewer
    ));
}

#[test]
fn raw_metrics_carry_both_statistics_verbatim() {
    let b = reading(
        "t",
        r#"{"timestamp": 1541084142.7118, "x": 2178.139999999}"#,
    );
    let n = reading(
        "t",
        r#"{"timestamp":1541084157.12885,"big":18446744073709551615}"#,
    );
    let Outcome::Publish(doc) = compute(Some(&b), &n, "h", true) else {
        panic!("expected a document");
    };
    let text = serde_json::to_string(&doc).expect("serializes");
    assert!(text.ends_with(
            r#""stats":{"before":{"timestamp": 1541084142.7118, "x": 2178.139999999},"now":{"timestamp":1541084157.12885,"big":18446744073709551615}}}"#
        ), "{text}");
    let mut id = String::from("before|");
    doc.write_message_id(&mut id);
    assert_eq!(id, "before|t@1541084157.12885");
    let Outcome::Publish(doc) = compute(Some(&b), &n, "h", false) else {
        panic!("expected a document");
    };
    assert!(doc.stats.is_none());
}
