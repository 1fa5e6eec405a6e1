//! Unit tests of `reading.rs`: answers and stored entries read into readings, broken
//! entries skipped.

use super::*;

/// The answer read with its entries kept, after checking that reading it in one scan
/// (entries dropped) finds the same readings and skips the same entries.
fn answer(text: &str) -> ParsedAnswer {
    let kept = parse_answer(text.as_bytes(), Entries::Kept).expect("answer parses");
    let dropped = parse_answer(text.as_bytes(), Entries::Dropped).expect("answer parses");
    assert_same(&kept, &dropped);
    assert!(dropped.readings.iter().all(|r| r.entry.is_empty()));
    kept
}

pub(crate) fn assert_same(kept: &ParsedAnswer, dropped: &ParsedAnswer) {
    assert_eq!(kept.skipped, dropped.skipped);
    assert_eq!(kept.first_skipped, dropped.first_skipped);
    let fields = |a: &ParsedAnswer| -> Vec<_> {
        a.readings
            .iter()
            .map(|r| (r.executor_id.clone(), r.sample, r.malformed_fields.clone()))
            .collect()
    };
    assert_eq!(fields(kept), fields(dropped));
}

/// Both ways of reading give the same error for a whole answer.
fn answer_error(text: &[u8]) -> AnswerError {
    let kept = parse_answer(text, Entries::Kept).expect_err("not an answer");
    let dropped = parse_answer(text, Entries::Dropped).expect_err("not an answer");
    assert_eq!(
        std::mem::discriminant(&kept),
        std::mem::discriminant(&dropped)
    );
    kept
}

#[test]
fn reads_a_full_entry_and_keeps_its_bytes() {
    let text = r#"[{"executor_id":"a.1","framework_id":"f","statistics":{"timestamp":1541084157.12885,"cpus_limit":8.25,"cpus_user_time_secs":96348.84,"cpus_system_time_secs":2178.139999999,"cpus_throttled_time_secs":352.597023453,"mem_rss_bytes":18446744073709551615,"mem_limit_bytes":7650410496, "extra": [1,2]}}]"#;
    let a = answer(text);
    assert_eq!(a.skipped, 0);
    let r = &a.readings[0];
    assert_eq!(r.executor_id, "a.1");
    assert_eq!(&*r.entry, &text[1..text.len() - 1]);
    let statistics = r.statistics().expect("statistics").get();
    assert!(statistics.starts_with(r#"{"timestamp":1541084157.12885,"#));
    assert!(statistics.ends_with(r#""extra": [1,2]}"#));
    assert_eq!(r.sample.timestamp, 1541084157.12885);
    assert_eq!(r.sample.cpus_system_time_secs, Some(2178.139999999));
    assert_eq!(r.sample.mem_rss_bytes, Some(u64::MAX));
    assert_eq!(r.sample.mem_limit_bytes, Some(7650410496));
    assert!(r.malformed_fields.is_empty());
}

#[test]
fn whole_answers_that_are_not_arrays_are_errors() {
    assert!(matches!(answer_error(b"<html>"), AnswerError::NotJson(_)));
    assert!(matches!(answer_error(b"[{\"a\":"), AnswerError::NotJson(_)));
    assert!(matches!(answer_error(b""), AnswerError::NotJson(_)));
    assert!(matches!(
        answer_error(b"{\"executor_id\":\"x\"}"),
        AnswerError::NotAnArray
    ));
    assert!(matches!(answer_error(b"42"), AnswerError::NotAnArray));
    assert_eq!(answer("[]").readings.len(), 0);
}

#[test]
fn bad_entries_are_skipped_and_the_rest_kept() {
    let a = answer(
        r#"[1, "x", null, [], {}, {"executor_id": 5, "statistics": {"timestamp": 1}},
               {"executor_id": "", "statistics": {"timestamp": 1}},
               {"executor_id": "a", "statistics": 3},
               {"executor_id": "b"},
               {"executor_id": "c", "statistics": {"timestamp": "1"}},
               {"executor_id": "d", "statistics": {}},
               {"executor_id": "ok", "statistics": {"timestamp": 2.5}}]"#,
    );
    let reasons: Vec<_> = a.first_skipped.iter().map(|(_, why)| *why).collect();
    use EntryError::*;
    assert_eq!(
        reasons,
        vec![
            NotAnObject,
            NotAnObject,
            NotAnObject,
            NotAnObject,
            NoExecutorId,
            NoExecutorId,
            NoExecutorId,
            NoStatistics,
            NoStatistics,
            NoTimestamp,
        ]
    );
    assert_eq!(a.skipped, 11, "the eleventh is counted, not named");
    assert_eq!(a.readings.len(), 1);
    assert_eq!(a.readings[0].executor_id, "ok");
    assert_eq!(a.readings[0].sample.timestamp, 2.5);
}

#[test]
fn an_entry_naming_a_field_twice_is_skipped_and_the_answer_kept() {
    let a = answer(
        r#"[{"executor_id":"a","executor_id":"b","statistics":{"timestamp":1}},
               {"executor_id":"c","statistics":{"timestamp":1},"statistics":{"timestamp":2}},
               {"executor_id":"d","statistics":{"timestamp":1,"timestamp":2}},
               {"executor_id":"e","x":1,"x":2,"statistics":{"timestamp":3,"y":1,"y":2}}]"#,
    );
    let reasons: Vec<_> = a.first_skipped.iter().map(|(_, why)| *why).collect();
    assert_eq!(reasons, [EntryError::NotAnObject; 3]);
    assert_eq!(a.readings.len(), 1, "unused fields may repeat");
    assert_eq!(a.readings[0].sample.timestamp, 3.0);
}

#[test]
fn escaped_names_and_ids_read_as_their_text() {
    let a =
        answer(r#"[{"executor_\u0069d":"a\"b","statistics":{"timest\u0061mp":5,"cpus_limit":1}}]"#);
    assert_eq!(a.readings[0].executor_id, "a\"b");
    assert_eq!(a.readings[0].sample.timestamp, 5.0);
    assert_eq!(a.readings[0].sample.cpus_limit, Some(1.0));
}

#[test]
fn a_body_that_is_not_utf8_throughout_reads_as_before() {
    let good = br#"{"executor_id":"a","statistics":{"timestamp":1}}"#;
    let mut body = b"[".to_vec();
    body.extend_from_slice(br#"{"executor_id":"b","note":"bad "#);
    body.push(0xff);
    body.extend_from_slice(br#"","statistics":{"timestamp":2}},"#);
    body.extend_from_slice(good);
    body.push(b']');
    let kept = parse_answer(&body, Entries::Kept).expect("read without its raw entries");
    let dropped = parse_answer(&body, Entries::Dropped).expect("bytes in an unused string");
    assert_eq!(dropped.readings.len(), 2);
    // Raw metrics keep entries as text, which such a body is not: the readings are read
    // as without raw metrics, none with its raw entry.
    assert_same(&kept, &dropped);
    assert!(kept.readings.iter().all(|r| r.entry.is_empty()));
    let mut bad_id = b"[".to_vec();
    bad_id.extend_from_slice(br#"{"executor_id":"a"#);
    bad_id.push(0xff);
    bad_id.extend_from_slice(br#"","statistics":{"timestamp":1}}]"#);
    assert!(matches!(answer_error(&bad_id), AnswerError::NotJson(_)));
}

#[test]
fn past_the_first_few_skipped_entries_are_only_counted() {
    let mut text = "[0".to_string() + &",0".repeat(999);
    text.push_str(r#",{"executor_id":"ok","statistics":{"timestamp":1}}]"#);
    let a = answer(&text);
    assert_eq!(a.skipped, 1000);
    let positions: Vec<usize> = a.first_skipped.iter().map(|&(at, _)| at).collect();
    assert_eq!(positions, (0..SKIPPED_NAMED).collect::<Vec<_>>());
    assert_eq!(a.readings.len(), 1);
}

#[test]
fn fields_of_the_wrong_type_are_missing_and_named() {
    let a = answer(
        r#"[{"executor_id":"x","statistics":{"timestamp":10,"cpus_limit":"1.1",
                "cpus_user_time_secs":{"a":1},"cpus_system_time_secs":[1],
                "cpus_throttled_time_secs":null,"mem_rss_bytes":-5,"mem_limit_bytes":1.5}}]"#,
    );
    let r = &a.readings[0];
    assert_eq!(
        r.sample,
        Sample {
            timestamp: 10.0,
            ..Sample::default()
        }
    );
    assert_eq!(
        r.malformed_fields,
        vec![
            "cpus_limit",
            "cpus_user_time_secs",
            "cpus_system_time_secs",
            "cpus_throttled_time_secs",
            "mem_rss_bytes",
            "mem_limit_bytes"
        ]
    );
}

#[test]
fn soft_limits_stand_in_for_missing_hard_ones() {
    let sample = |statistics: &str| {
        let a = answer(&format!(
            r#"[{{"executor_id":"x","statistics":{{"timestamp":1{statistics}}}}}]"#
        ));
        (a.readings[0].sample, a.readings[0].malformed_fields.clone())
    };
    let (s, _) = sample(r#","cpus_soft_limit":1.1,"mem_soft_limit_bytes":512"#);
    assert_eq!((s.cpus_limit, s.mem_limit_bytes), (Some(1.1), Some(512)));
    let (s, _) = sample(
        r#","cpus_limit":2.1,"cpus_soft_limit":1.1,"mem_limit_bytes":1024,"mem_soft_limit_bytes":512"#,
    );
    assert_eq!((s.cpus_limit, s.mem_limit_bytes), (Some(2.1), Some(1024)));
    let (s, _) = sample(r#","mem_limit_bytes":0,"mem_soft_limit_bytes":512"#);
    assert_eq!(
        s.mem_limit_bytes,
        Some(512),
        "a hard limit of 0 is no limit"
    );
    let (s, malformed) = sample(r#","cpus_limit":"2","cpus_soft_limit":1.1"#);
    assert_eq!(s.cpus_limit, Some(1.1));
    assert_eq!(malformed, ["cpus_limit"]);
    let (s, _) = sample(r#","cpus_limit":0.05,"cpus_soft_limit":1.1"#);
    assert_eq!(
        s.cpus_limit,
        Some(0.05),
        "a hard limit present is the limit"
    );
    let (s, _) = sample("");
    assert_eq!((s.cpus_limit, s.mem_limit_bytes), (None, None));
}

#[test]
fn numbers_of_every_json_form_are_read() {
    let a = answer(
        r#"[{"executor_id":"x","statistics":{"timestamp":1e9,"cpus_limit":-1,
                "cpus_user_time_secs":1E2,"mem_rss_bytes":4096.0,"mem_limit_bytes":1e300}}]"#,
    );
    let s = a.readings[0].sample;
    assert_eq!(s.timestamp, 1e9);
    assert_eq!(s.cpus_limit, Some(-1.0));
    assert_eq!(s.cpus_user_time_secs, Some(100.0));
    assert_eq!(s.mem_rss_bytes, Some(4096));
    assert_eq!(s.mem_limit_bytes, None, "1e300 bytes is past u64");
    assert_eq!(a.readings[0].malformed_fields, vec!["mem_limit_bytes"]);
}

/// Found by fuzzing (fuzz/, agent_statistics): one byte that is not UTF-8 in an entry's
/// string made the whole answer unreadable with raw metrics kept, and not without them.
/// Now both read the same readings; only the raw entries are left out.
#[test]
fn an_answer_that_is_not_utf8_throughout_reads_the_same_with_or_without_raw_entries() {
    let mut body = br#"[{"executor_id":"a.1","executor_name":"x"#.to_vec();
    body.extend_from_slice(&[0x81, 0x81]);
    body.extend_from_slice(br#"","statistics":{"timestamp":1.5,"cpus_user_time_secs":2.0}}]"#);
    let kept = parse_answer(&body, Entries::Kept).expect("read, not refused");
    let dropped = parse_answer(&body, Entries::Dropped).expect("read");
    assert_same(&kept, &dropped);
    assert_eq!(kept.readings.len(), 1);
    assert!(
        kept.readings[0].entry.is_empty(),
        "no raw entry from bytes that are not text"
    );
}

/// Found by fuzzing (fuzz/, agent_statistics): an entry that is a number past f64's range
/// made the whole answer unreadable without raw metrics, and only that entry with them.
/// Now both skip that entry alone.
#[test]
fn a_number_past_f64_s_range_is_one_skipped_entry_in_both_modes() {
    let body = br#"[2e616,{"executor_id":"a.1","statistics":{"timestamp":1.5}}]"#;
    let kept = parse_answer(body, Entries::Kept).expect("read");
    let dropped = parse_answer(body, Entries::Dropped).expect("read, not refused");
    assert_same(&kept, &dropped);
    assert_eq!((dropped.skipped, dropped.readings.len()), (1, 1));
    assert!(
        dropped.readings[0].entry.is_empty(),
        "no raw entry without raw metrics"
    );
}
