//! The routing key setting (`STATS_COLLECTOR_RABBITMQ_RK`): a static key, or a template
//! naming fields of the document (`asgard.stats.{appname}`), each document's key a pure
//! function of the document, so a document sent again from the outbox goes the same way
//! (docs/publishing.md, "Routing keys").
//!
//! The rule: `{appname}`, `{taskname}` and `{host}` are replaced by the document's field;
//! `{{` and `}}` stand for a brace; any other `{…}` (or a brace left open) is a
//! configuration error. In a field's value, `/` becomes `.` (a leading `/` dropped) and
//! `.` becomes `_`, so that for a topic exchange an app id's path segments are the key's
//! words (`/group/app` is `group.app`) and a task id or a host is one word. A key over
//! 255 bytes is fitted by the publisher as a long message id is, never cut silently.

use super::error::{invalid, ConfigError};
use crate::wire_limits::SHORT_STR_MAX;

/// A field of the document a routing key may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyField {
    AppName,
    TaskName,
    Host,
}

impl KeyField {
    const ALL: [(KeyField, &'static str); 3] = [
        (KeyField::AppName, "appname"),
        (KeyField::TaskName, "taskname"),
        (KeyField::Host, "host"),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPart {
    Text(String),
    Field(KeyField),
}

/// The routing key of every document: static, or a template of the document's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutingKey {
    /// As configured: shown by `check` and in messages.
    pub(crate) setting: String,
    parts: Vec<KeyPart>,
}

impl RoutingKey {
    /// Reads the setting; `name` is how an error names it.
    pub(crate) fn parse(name: &str, setting: &str) -> Result<RoutingKey, ConfigError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = setting;
        while let Some(at) = rest.find(['{', '}']) {
            text.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{{") {
                text.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                text.push('}');
                rest = after;
            } else if let Some(after) = tail.strip_prefix('{') {
                let Some((field, after)) = after.split_once('}') else {
                    return Err(invalid(format!(
                        "{name}: a {{ is left open in {setting:?} (write {{{{ for a brace)"
                    )));
                };
                let Some(&(known, _)) = KeyField::ALL.iter().find(|(_, n)| *n == field) else {
                    return Err(invalid(format!(
                        "{name}: unknown field {{{field}}} in {setting:?}; a routing key may name {{appname}}, {{taskname}} and {{host}} (write {{{{ for a brace)"
                    )));
                };
                if !text.is_empty() {
                    parts.push(KeyPart::Text(std::mem::take(&mut text)));
                }
                parts.push(KeyPart::Field(known));
                rest = after;
            } else {
                return Err(invalid(format!(
                    "{name}: a }} without its {{ in {setting:?} (write }}}} for a brace)"
                )));
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(KeyPart::Text(text));
        }
        let key = RoutingKey {
            setting: setting.to_string(),
            parts,
        };
        let fixed: usize = key
            .parts
            .iter()
            .map(|p| match p {
                KeyPart::Text(t) => t.len(),
                KeyPart::Field(_) => 0,
            })
            .sum();
        if fixed > SHORT_STR_MAX {
            let without = if key.fixed().is_some() {
                ""
            } else {
                " without its fields"
            };
            return Err(invalid(format!(
                "{name} is {fixed} bytes long{without}; AMQP carries at most {SHORT_STR_MAX}"
            )));
        }
        Ok(key)
    }

    /// The key itself when it names no field (the same for every document).
    pub(crate) fn fixed(&self) -> Option<&str> {
        match &self.parts[..] {
            [] => Some(""),
            [KeyPart::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// Appends a document's key to `out`; `field` gives the document's value of each
    /// field. (The publisher fits a key over 255 bytes.)
    pub(crate) fn write<'a>(&self, out: &mut String, field: impl Fn(KeyField) -> &'a str) {
        for part in &self.parts {
            match part {
                KeyPart::Text(text) => out.push_str(text),
                KeyPart::Field(name) => write_value(out, field(*name)),
            }
        }
    }

    /// The key of a made-up document, for `check` to show what the template gives.
    pub(crate) fn example(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, |field| match field {
            KeyField::AppName => "/group/app",
            KeyField::TaskName => "group_app.5e3b2f4c-1d2a-11f1-9c0e-0242ac110002",
            KeyField::Host => "10.0.0.1:5051",
        });
        out
    }
}

/// A field's value in a key: `/` becomes `.` (a leading one dropped), `.` becomes `_`.
fn write_value(out: &mut String, value: &str) {
    let value = value.strip_prefix('/').unwrap_or(value);
    out.reserve(value.len());
    for c in value.chars() {
        out.push(match c {
            '/' => '.',
            '.' => '_',
            other => other,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(setting: &str) -> RoutingKey {
        RoutingKey::parse("RK", setting).expect("valid")
    }

    fn render(key: &RoutingKey) -> String {
        let mut out = String::new();
        key.write(&mut out, |field| match field {
            KeyField::AppName => "/afiliados/infra/certbot-public-afiliados.com.br",
            KeyField::TaskName => "afiliados_infra_certbot.8f91eac8",
            KeyField::Host => "10.1.2.3:5051",
        });
        out
    }

    #[test]
    fn a_key_without_fields_is_static_exactly_as_given() {
        for setting in ["asgard-stats", "a.b.c", "", "k/with/slashes"] {
            let key = key(setting);
            assert_eq!(key.fixed(), Some(setting));
            assert_eq!(render(&key), setting);
        }
        assert_eq!(
            key("x{{y}}z").fixed(),
            Some("x{y}z"),
            "braces written twice"
        );
    }

    #[test]
    fn fields_are_replaced_slashes_becoming_dots_and_dots_underscores() {
        let key = key("asgard.stats.{appname}");
        assert_eq!(key.fixed(), None);
        assert_eq!(
            render(&key),
            "asgard.stats.afiliados.infra.certbot-public-afiliados_com_br"
        );
        assert_eq!(
            render(&self::key("{taskname}")),
            "afiliados_infra_certbot_8f91eac8"
        );
        assert_eq!(
            render(&self::key("{host}/{appname}")),
            "10_1_2_3:5051/afiliados.infra.certbot-public-afiliados_com_br"
        );
        assert_eq!(key.example(), "asgard.stats.group.app");
    }

    #[test]
    fn unknown_fields_and_stray_braces_are_configuration_errors() {
        for (setting, says) in [
            ("asgard.{app}", "unknown field {app}"),
            ("asgard.{appname", "left open"),
            ("asgard.appname}", "without its {"),
            ("{}", "unknown field {}"),
        ] {
            let error = RoutingKey::parse("RK", setting).expect_err(setting);
            assert!(error.to_string().contains(says), "{setting}: {error}");
            assert!(error.to_string().starts_with("RK"), "{error}");
        }
    }

    #[test]
    fn the_fixed_part_alone_must_fit_a_short_string() {
        let long = format!("{}.{{taskname}}", "k".repeat(255));
        let error = RoutingKey::parse("RK", &long).expect_err("too long");
        assert!(error.to_string().contains("256 bytes"), "{error}");
        assert!(RoutingKey::parse("RK", &format!("{}{{host}}", "k".repeat(255))).is_ok());
    }
}
