//! A configuration error: one line naming the setting, exit code 2.

/// A configuration error: shown as one line, exit code 2. When one setting's value is
/// wrong, `setting` is its flag, so the line can name the setting as the operator gave
/// it (its environment variable or its flag: see [`ConfigError::naming`]).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.naming(self.setting.unwrap_or_default()))]
pub(crate) struct ConfigError {
    setting: Option<&'static str>,
    message: String,
}

impl ConfigError {
    /// The flag of the setting whose value is wrong (`--deadline`), if one is.
    pub(crate) fn setting(&self) -> Option<&'static str> {
        self.setting
    }

    /// The error with its setting called `name` (`STATS_COLLECTOR_DEADLINE (--deadline)`).
    pub(crate) fn naming(&self, name: &str) -> String {
        match self.setting {
            Some(_) => format!("{name} {}", self.message),
            None => self.message.clone(),
        }
    }
}

pub(super) fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: None,
        message: message.into(),
    }
}

/// The value of the setting whose flag is `flag` is wrong; `message` follows its name.
pub(super) fn invalid_value(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: Some(flag),
        message: message.into(),
    }
}
