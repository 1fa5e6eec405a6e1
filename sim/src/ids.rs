//! Identifiers: Marathon app ids, executor ids (Marathon task ids) and the per-cluster uuid.
//!
//! Executor ids are pure functions of (agent, task, generation) so tests can predict them
//! and bodies need no stored per-task strings; the cluster uuid is unique per cluster so
//! several clusters in one process are told apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Groups and apps that app ids are made of: lowercase letters, digits and '-', never
/// '_', because Marathon turns the '/' of an app id into '_' in task ids.
const GROUPS: [&str; 5] = ["prod", "staging", "batch", "ml-team", "infra-2"];
const SUBGROUPS: [&str; 2] = ["backend", "jobs"];
const APPS: [&str; 7] = [
    "web",
    "api-v2",
    "worker",
    "cache",
    "ingest",
    "scheduler",
    "frontend-3",
];

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The task id forms Marathon has used, mixed in so a collector sees all of them.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// `/group/app` -> `group_app.<uuid>`.
    Classic,
    /// Marathon 1.8+: `group_app.instance-<uuid>._app.1`.
    Instance,
    /// A deeper app: `/group/sub/app` -> `group_sub_app.<uuid>`.
    Nested,
}

fn form(task: usize) -> Form {
    match task % 8 {
        3 => Form::Instance,
        6 => Form::Nested,
        _ => Form::Classic,
    }
}

/// SplitMix64's finalizer: cheap and well mixed, so nearby indexes give unrelated ids.
pub(crate) fn mix(x: u64) -> u64 {
    let x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The last segment of a task's app id, e.g. `"web"`.
pub(crate) fn app_name(task: usize) -> &'static str {
    APPS[task % APPS.len()]
}

fn segments(task: usize) -> impl Iterator<Item = &'static str> {
    let group = GROUPS[(task / 2) % GROUPS.len()];
    let sub = (form(task) == Form::Nested).then_some(SUBGROUPS[task % SUBGROUPS.len()]);
    std::iter::once(group)
        .chain(sub)
        .chain(std::iter::once(app_name(task)))
}

/// The groups of a `/`-separated group prefix.
fn groups(prefix: &str) -> impl Iterator<Item = &str> {
    prefix.split('/').filter(|g| !g.is_empty())
}

/// The Marathon app id of a task under the groups of `prefix`, e.g. `"/prod/web"`.
pub(crate) fn app_id(prefix: &str, task: usize) -> String {
    let mut id = String::new();
    for segment in groups(prefix).chain(segments(task).map(|s| -> &str { s })) {
        id.push('/');
        id.push_str(segment);
    }
    id
}

/// Appends the executor id of `task` on `agent` under the groups of `prefix`;
/// `generation` 0 is the stable id, others are the successive ids of a churning task.
pub(crate) fn push_executor_id(
    out: &mut String,
    prefix: &str,
    agent: usize,
    task: usize,
    generation: u64,
) {
    for group in groups(prefix) {
        out.push_str(group);
        out.push('_');
    }
    for (i, segment) in segments(task).enumerate() {
        if i > 0 {
            out.push('_');
        }
        out.push_str(segment);
    }
    let seed = mix(mix(mix(agent as u64) ^ task as u64) ^ generation);
    if form(task) == Form::Instance {
        out.push_str(".instance-");
        push_uuid(out, seed);
        out.push_str("._app.1");
    } else {
        out.push('.');
        push_uuid(out, seed);
    }
}

/// Appends an 8-4-4-4-12 lowercase hex uuid (version 4 layout) derived from `seed`.
pub(crate) fn push_uuid(out: &mut String, seed: u64) {
    let hi = (mix(seed) & !0xF000) | 0x4000;
    let lo = (mix(seed ^ 0x5555_5555_5555_5555) & !(0xC << 60)) | (0x8 << 60);
    push_hex(out, hi >> 32, 8);
    out.push('-');
    push_hex(out, hi >> 16, 4);
    out.push('-');
    push_hex(out, hi, 4);
    out.push('-');
    push_hex(out, lo >> 48, 4);
    out.push('-');
    push_hex(out, lo, 12);
}

/// Appends the low `digits` hex digits of `value`.
fn push_hex(out: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (value >> (i * 4)) & 0xF;
        out.push(char::from(HEX[nibble as usize]));
    }
}

/// A fresh uuid for a cluster: the process id, a process-wide counter and the time make
/// it differ between clusters of one process and between processes.
pub(crate) fn cluster_uuid() -> String {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = STARTED.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(36);
    push_uuid(
        &mut out,
        mix(nanos) ^ mix(count) ^ u64::from(std::process::id()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executor_id(agent: usize, task: usize, generation: u64) -> String {
        let mut out = String::new();
        push_executor_id(&mut out, "", agent, task, generation);
        out
    }

    fn is_uuid(s: &str) -> bool {
        let lengths: Vec<usize> = s.split('-').map(str::len).collect();
        lengths == [8, 4, 4, 4, 12]
            && s.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
    }

    #[test]
    fn uuids_have_the_canonical_shape() {
        for seed in 0..100 {
            let mut out = String::new();
            push_uuid(&mut out, seed);
            assert!(is_uuid(&out), "{out}");
        }
    }

    #[test]
    fn executor_ids_follow_marathon_forms() {
        assert!(executor_id(0, 0, 0).starts_with("prod_web."));
        let instance = executor_id(0, 3, 0);
        assert!(
            instance.starts_with("staging_cache.instance-"),
            "{instance}"
        );
        assert!(instance.ends_with("._app.1"), "{instance}");
        let nested = executor_id(0, 6, 0);
        assert!(
            nested.starts_with("ml-team_backend_frontend-3."),
            "{nested}"
        );
        assert_eq!(app_id("", 6), "/ml-team/backend/frontend-3");
    }

    #[test]
    fn executor_ids_are_deterministic_and_distinct() {
        assert_eq!(executor_id(1, 2, 0), executor_id(1, 2, 0));
        assert_ne!(executor_id(1, 2, 0), executor_id(2, 2, 0));
        assert_ne!(executor_id(1, 2, 0), executor_id(1, 2, 1));
        let uuid = executor_id(4, 0, 7);
        assert!(is_uuid(uuid.split_once('.').map_or("", |(_, u)| u)));
    }

    #[test]
    fn app_names_never_contain_underscores() {
        for task in 0..64 {
            assert!(!app_id("", task).contains('_'));
        }
    }

    #[test]
    fn a_group_prefix_goes_in_front_of_app_and_executor_ids() {
        assert_eq!(app_id("/a/ü/", 0), "/a/ü/prod/web");
        let mut id = String::new();
        push_executor_id(&mut id, "a/ü", 0, 0, 0);
        assert!(id.starts_with("a_ü_prod_web."), "{id}");
    }
}
