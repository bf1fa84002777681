//! The plugin's configuration values and granted secrets, read from the host.

use crate::bindings::tagship::plugin::host;

/// The value of configuration key `key` (`[plugins.NAME.config]` in `tagship.toml` or
/// `--config KEY=VALUE`), after the host substituted `{{stage}}`, `{{environment}}`,
/// `{{version}}` and `{{component}}`. `None` when it is not set.
#[must_use]
pub fn config(key: &str) -> Option<String> {
    host::config(key)
}

/// The value of configuration key `key`, or `default` when it is not set or empty.
#[must_use]
pub fn config_or(key: &str, default: &str) -> String {
    match host::config(key) {
        Some(value) if !value.trim().is_empty() => value,
        _ => default.to_owned(),
    }
}

/// The value of configuration key `key`; an error telling the operator where to set it when
/// it is missing or empty. Meant for `?` in a plugin's entry point.
pub fn require_config(key: &str) -> Result<String, String> {
    match host::config(key) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(missing_config_message(key)),
    }
}

/// The value of the secret `name`, when the operator granted it to this plugin and it is set.
/// Never log it or put it into a result: the host redacts it, but a plugin must not try.
#[must_use]
pub fn secret(name: &str) -> Option<String> {
    host::secret(name).filter(|value| !value.is_empty())
}

/// The value of the secret `name`; an error telling the operator how to grant it when it is
/// not granted or not set.
pub fn require_secret(name: &str) -> Result<String, String> {
    secret(name).ok_or_else(|| missing_secret_message(name))
}

pub(crate) fn missing_config_message(key: &str) -> String {
    format!("missing config key `{key}`: set it under [plugins.NAME.config]")
}

pub(crate) fn missing_secret_message(name: &str) -> String {
    format!(
        "secret `{name}` is not granted or not set: grant it with `secrets = [\"{name}\"]` under \
         [plugins.NAME] (or `--secret {name}`) and set it in the runner's environment"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_names_the_key_and_where_to_set_it() {
        assert_eq!(
            missing_config_message("url"),
            "missing config key `url`: set it under [plugins.NAME.config]"
        );
    }

    #[test]
    fn a_missing_secret_names_the_secret_and_how_to_grant_it() {
        let message = missing_secret_message("GITLAB_TOKEN");
        assert!(message.starts_with("secret `GITLAB_TOKEN` is not granted"));
        assert!(message.contains("--secret GITLAB_TOKEN"));
    }
}
