//! What several commands share: reading the configuration, the version and stage names, each
//! turned into a usage error (exit 2) that says what to fix.

use std::path::Path;

use super::CommandError;
use crate::config::{self, Config};
use crate::version::Version;

/// Loads and validates the configuration file.
pub fn load(path: &Path) -> Result<Config, CommandError> {
    config::load(path).map_err(CommandError::usage)
}

/// The version from `--version`, else `CI_COMMIT_TAG` (clap already read `TAGSHIP_VERSION`).
pub fn version(given: Option<&str>) -> Result<Version, CommandError> {
    let text = given
        .map(str::to_owned)
        .or_else(|| std::env::var("CI_COMMIT_TAG").ok())
        .ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!(
                "no version: pass --version v3.1.0 (or set TAGSHIP_VERSION or CI_COMMIT_TAG)"
            ))
        })?;
    parse_version(&text, "--version")
}

/// Parses a version given with `flag`.
pub fn parse_version(text: &str, flag: &str) -> Result<Version, CommandError> {
    text.parse()
        .map_err(|e| CommandError::usage(anyhow::anyhow!("{flag}: {e}")))
}

/// Refuses a stage name the configuration does not have, listing the ones it has.
pub fn require_stage(config: &Config, stage: &str) -> Result<(), CommandError> {
    if config.stage(stage).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = config.stages.iter().map(|s| s.name.as_str()).collect();
    Err(CommandError::usage(anyhow::anyhow!(
        "there is no stage `{stage}` in {}; the stages are: {}",
        config.path.display(),
        known.join(", ")
    )))
}
