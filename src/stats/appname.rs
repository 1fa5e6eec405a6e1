//! Derives the Marathon app id (`/group/app`) from a Mesos executor or task id
//! (docs/document.md, "App names").
//!
//! Consumers average usage per app, so every form of id that Marathon and Mesos produce
//! must map to the same app id the Python collector reported. Marathon app segments hold
//! lowercase letters, digits, `-` and `.` but never `_`, and a task id starts with the
//! segments joined by `_`, followed by `.` and a UUID (possibly wrapped as `instance-<uuid>`).

/// The Marathon app id for a task or executor id, with a leading `/`.
pub(crate) fn appname(task_id: &str) -> String {
    // Custom executors prefix the task id; a pod's default executor prefixes `instance-`.
    let id = task_id.strip_prefix("marathon-").unwrap_or(task_id);
    let id = id.strip_prefix("instance-").unwrap_or(id);
    let app = app_part(id);
    let mut name = String::with_capacity(app.len() + 1);
    for segment in app.split('_') {
        name.push('/');
        name.push_str(segment);
    }
    name
}

/// The part of the id before its Marathon run identifier.
///
/// Segments may themselves hold dots (`certbot-public-afiliados.com.br`), so the id is cut
/// before the first dot-separated component that is a UUID or `instance-<uuid>`; ids with
/// no such component are cut at their last dot, and ids without a dot are used whole.
/// (Read byte by byte: this runs for every document, and the dots are ASCII, so every
/// cut is on a character boundary.)
fn app_part(id: &str) -> &str {
    let bytes = id.as_bytes();
    let mut last_dot = None;
    for (dot, _) in bytes.iter().enumerate().filter(|&(_, &b)| b == b'.') {
        let rest = &bytes[dot + 1..];
        let component = rest.split(|&b| b == b'.').next().unwrap_or(rest);
        let run_id = component.strip_prefix(b"instance-").unwrap_or(component);
        if is_uuid(run_id) {
            return &id[..dot];
        }
        last_dot = Some(dot);
    }
    last_dot.map_or(id, |dot| &id[..dot])
}

/// True for the 8-4-4-4-12 hexadecimal form Marathon uses in task ids.
fn is_uuid(s: &[u8]) -> bool {
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| {
            if DASHES.contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "8f91eac8-e2b6-11e8-ad9b-de0cd2503c7d";

    #[test]
    fn every_task_id_form_maps_to_its_app() {
        let cases: Vec<(String, &str)> = vec![
            // The reference cases of the Python collector.
            (
                "afiliados_infra_reverse-proxy_certbot-public-afiliados.com.br.8f91eac8-e2b6-11e8-ad9b-de0cd2503c7d".into(),
                "/afiliados/infra/reverse-proxy/certbot-public-afiliados.com.br",
            ),
            (
                "afiliados_infra_reverse-proxy_certbot-public.8f91eac8-e2b6-11e8-ad9b-de0cd2503c7d".into(),
                "/afiliados/infra/reverse-proxy/certbot-public",
            ),
            ("infra_stress.0741cf07-dde6-11e8-a6bb-0242ac120020".into(), "/infra/stress"),
            (
                "sieve_captura_kirby_powerup.947f6124-762a-11e8-b78b-c678b0156430".into(),
                "/sieve/captura/kirby/powerup",
            ),
            // Marathon up to 1.7, and resident tasks with an attempt number.
            (format!("group_app.{UUID}"), "/group/app"),
            (format!("group_app.{UUID}.3"), "/group/app"),
            // Marathon 1.8+ apps and pod tasks, with and without an incarnation.
            (format!("group_app.instance-{UUID}._app.1"), "/group/app"),
            (format!("group_pod.instance-{UUID}.web"), "/group/pod"),
            (format!("group_pod.instance-{UUID}.web.2"), "/group/pod"),
            // A pod's default executor.
            (format!("instance-group_pod.{UUID}"), "/group/pod"),
            // Custom executors.
            (format!("marathon-group_app.{UUID}"), "/group/app"),
            (format!("marathon-group_app.instance-{UUID}._app.1"), "/group/app"),
            // Dots inside segments with every form.
            (format!("a.b_c.d.instance-{UUID}._app.1"), "/a.b/c.d"),
            (format!("a.b_c.d.{UUID}.1"), "/a.b/c.d"),
            // Uppercase hex is still a UUID.
            (format!("group_app.{}", UUID.to_uppercase()), "/group/app"),
            // Not Marathon: cut at the last dot, or used whole without one.
            ("thermos-www-data-prod-hello-0-abc.run".into(), "/thermos-www-data-prod-hello-0-abc"),
            ("spark_driver.20181101.1".into(), "/spark/driver.20181101"),
            ("nodot_task".into(), "/nodot/task"),
            ("plain".into(), "/plain"),
            ("".into(), "/"),
            // Almost a UUID is not one.
            ("group_app.8f91eac8-e2b6-11e8-ad9b-de0cd2503c7".into(), "/group/app"),
            ("group_app.zzzzzzzz-e2b6-11e8-ad9b-de0cd2503c7d.x".into(), "/group/app.zzzzzzzz-e2b6-11e8-ad9b-de0cd2503c7d"),
        ];
        for (id, expected) in cases {
            assert_eq!(appname(&id), expected, "task id {id:?}");
        }
    }

    #[test]
    fn uuid_recognition() {
        assert!(is_uuid(UUID.as_bytes()));
        assert!(!is_uuid(b"8f91eac8-e2b6-11e8-ad9b-de0cd2503c7d-1"));
        assert!(!is_uuid(b"8f91eac8e2b611e8ad9bde0cd2503c7d"));
        assert!(!is_uuid(b"8f91eac8-e2b6-11e8-ad9b-de0cd2503c7-d"));
        assert!(!is_uuid(b"8f91eac8-e2b6-11e8-ad9b-de0cd2503c7g"));
        assert!(!is_uuid(b""));
    }

    /// The first, plainer form of the same rules, char by char: the fast one must agree
    /// with it on any id.
    fn appname_oracle(task_id: &str) -> String {
        let id = task_id.strip_prefix("marathon-").unwrap_or(task_id);
        let id = id.strip_prefix("instance-").unwrap_or(id);
        let mut app = id.rsplit_once('.').map_or(id, |(app, _)| app);
        let mut search_from = 0;
        while let Some(offset) = id[search_from..].find('.') {
            let dot = search_from + offset;
            let component = id[dot + 1..].split('.').next().unwrap_or("");
            let run_id = component.strip_prefix("instance-").unwrap_or(component);
            let groups: Vec<&str> = run_id.split('-').collect();
            let uuid = groups.len() == 5
                && groups
                    .iter()
                    .zip([8, 4, 4, 4, 12])
                    .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
            if uuid {
                app = &id[..dot];
                break;
            }
            search_from = dot + 1;
        }
        format!("/{}", app.replace('_', "/"))
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_plain_rules_on_any_id(
            id in "(marathon-|instance-)?[a-zé_.-]{0,12}(\\.(instance-)?[0-9a-fA-F]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{11,12})?[a-z_.0-9-]{0,8}"
        ) {
            proptest::prop_assert_eq!(appname(&id), appname_oracle(&id));
        }
    }
}
