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
    name.push('/');
    name.extend(app.chars().map(|c| if c == '_' { '/' } else { c }));
    name
}

/// The part of the id before its Marathon run identifier.
///
/// Segments may themselves hold dots (`certbot-public-afiliados.com.br`), so the id is cut
/// before the first dot-separated component that is a UUID or `instance-<uuid>`; ids with
/// no such component are cut at their last dot, and ids without a dot are used whole.
fn app_part(id: &str) -> &str {
    let mut search_from = 0;
    while let Some(offset) = id[search_from..].find('.') {
        let dot = search_from + offset;
        let rest = &id[dot + 1..];
        let component = rest.split('.').next().unwrap_or(rest);
        let run_id = component.strip_prefix("instance-").unwrap_or(component);
        if is_uuid(run_id) {
            return &id[..dot];
        }
        search_from = dot + 1;
    }
    id.rsplit_once('.').map_or(id, |(app, _)| app)
}

/// True for the 8-4-4-4-12 hexadecimal form Marathon uses in task ids.
fn is_uuid(s: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut parts = s.split('-');
    GROUPS.iter().all(|&len| {
        parts
            .next()
            .is_some_and(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit()))
    }) && parts.next().is_none()
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
        assert!(is_uuid(UUID));
        assert!(!is_uuid("8f91eac8-e2b6-11e8-ad9b-de0cd2503c7d-1"));
        assert!(!is_uuid("8f91eac8e2b611e8ad9bde0cd2503c7d"));
        assert!(!is_uuid(""));
    }
}
