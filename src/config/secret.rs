//! Secrets: a value never shown ([`Secret`]), given as a flag, a variable or a file
//! (its `_FILE` setting) read here, so a file that cannot be used is exit 2 too.

use super::error::{invalid, ConfigError};
use std::fmt;
use std::path::PathBuf;

/// A value that must never reach a log, an error message or `--help`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(super) String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// The largest secret file read: a secret is a few bytes, and a path that names a device
/// or a log by mistake must not fill memory.
const SECRET_FILE_MAX_BYTES: u64 = 64 * 1024;

/// A secret setting given either as a value (flag or variable) or as a file holding it:
/// names for messages, and what was given.
pub(super) struct SecretSetting<'a> {
    /// `STATS_COLLECTOR_RABBITMQ_PWD (--rabbitmq-password)`
    pub(super) value_name: &'static str,
    /// `STATS_COLLECTOR_RABBITMQ_PWD_FILE (--rabbitmq-password-file)`
    pub(super) file_name: &'static str,
    pub(super) value: &'a Option<String>,
    pub(super) file: &'a Option<PathBuf>,
}

impl SecretSetting<'_> {
    /// The value, from wherever it was given; None when it was not. Both ways at once is
    /// an error, as is a file that cannot be read; no message holds the file's content.
    pub(super) fn read(&self) -> Result<Option<Secret>, ConfigError> {
        match (self.value, self.file) {
            (Some(_), Some(_)) => Err(invalid(format!(
                "{} and {} are both set: give the secret one way only",
                self.value_name, self.file_name
            ))),
            (Some(value), None) => Ok(Some(Secret(value.clone()))),
            (None, Some(path)) => read_secret_file(path)
                .map(|value| Some(Secret(value)))
                .map_err(|why| invalid(format!("{} {}: {why}", self.file_name, path.display()))),
            (None, None) => Ok(None),
        }
    }
}

/// A secret file's content, without one trailing newline (`\n` or `\r\n`), as editors
/// and `echo` leave it. Errors say what is wrong, never what the file holds.
fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err("cannot be read: it is a folder".into());
    }
    let mut bytes = Vec::new();
    file.take(SECRET_FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > SECRET_FILE_MAX_BYTES {
        return Err(format!(
            "is over {SECRET_FILE_MAX_BYTES} bytes, too large for a secret"
        ));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err("is empty".into());
    }
    Ok(text)
}
