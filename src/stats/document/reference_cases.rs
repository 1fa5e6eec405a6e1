//! The readings and documents of the Python collector, copied from the shared contract.

use super::*;
use crate::stats::reading::parse_entry;
use serde_json::Value;

const CASES: &str = include_str!("../../../tests/data/reference-cases.json");

fn cases() -> Value {
    serde_json::from_str(CASES).expect("reference cases are JSON")
}

fn reading_of(entry: &Value) -> Reading {
    parse_entry(entry.to_string().into()).expect("reference entries are valid")
}

#[test]
fn documents_match_the_python_collector() {
    let cases = cases();
    let documents = cases["documents"].as_array().expect("documents");
    assert!(!documents.is_empty());
    for case in documents {
        let name = case["name"].as_str().expect("name");
        let (b, n) = (reading_of(&case["before"]), reading_of(&case["now"]));
        let raw = case["include_raw_metrics"].as_bool().expect("flag");
        let host = case["host"].as_str().expect("host");
        let Outcome::Publish(doc) = compute(Some(&b), &n, host, raw) else {
            panic!("{name}: expected a document");
        };
        let got = serde_json::to_value(&doc).expect("serializes");
        let got_fields = got.as_object().expect("object");
        // A case gives either the whole document or only the fields it is about.
        let expected = match case["expected"].as_object() {
            Some(whole) => {
                assert_eq!(
                    got_fields.keys().collect::<std::collections::BTreeSet<_>>(),
                    whole.keys().collect(),
                    "{name}: same fields"
                );
                whole
            }
            None => case["expected_subset"]
                .as_object()
                .expect("expected_subset"),
        };
        for (field, want) in expected {
            assert_close(name, field, &got[field], want);
        }
        for absent in case["absent"].as_array().into_iter().flatten() {
            let absent = absent.as_str().expect("field name");
            assert!(got.get(absent).is_none(), "{name}: {absent} must be absent");
        }
    }
}

/// Numbers within 2e-5 (the Python collector rounded up), everything else equal.
fn assert_close(case: &str, field: &str, got: &Value, want: &Value) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().expect("f64"), w.as_f64().expect("f64"));
            assert!((g - w).abs() <= 2e-5, "{case}: {field} = {g}, expected {w}");
        }
        (Value::Object(g), Value::Object(w)) => {
            assert_eq!(g.len(), w.len(), "{case}: {field} has the same keys");
            for (key, w) in w {
                assert_close(case, &format!("{field}.{key}"), &g[key], w);
            }
        }
        _ => assert_eq!(got, want, "{case}: {field}"),
    }
}

#[test]
fn first_sighting_publishes_nothing() {
    let now = reading_of(&cases()["first_sighting"]["now"]);
    assert!(matches!(
        compute(None, &now, "h", true),
        Outcome::FirstSighting
    ));
}

#[test]
fn the_full_agent_entry_is_read() {
    let now = reading_of(&cases()["agent_statistics_entry_full"]);
    assert_eq!(now.sample.cpus_limit, Some(8.25));
    assert_eq!(now.sample.mem_rss_bytes, Some(5105614848));
    assert_eq!(now.sample.timestamp, 1388534400.0);
    assert!(now.malformed_fields.is_empty());
}

#[test]
fn appnames_match_the_python_collector() {
    for pair in cases()["appnames"].as_array().expect("appnames") {
        let (id, app) = (
            pair[0].as_str().expect("id"),
            pair[1].as_str().expect("app"),
        );
        assert_eq!(crate::stats::appname::appname(id), app);
    }
}
