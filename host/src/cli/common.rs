//! What several commands share: reading the configuration, the version and stage names, each
//! turned into a usage error (exit 2) that says what to fix.

use std::fmt::Write as _;
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

/// Checks, before anything connects, that every stage's Kubernetes credentials can be read:
/// its kubeconfig exists and parses and has the contexts the stage names, or tagship runs in a
/// pod (then the stage may name no context). A problem is a usage error (exit 2) naming the
/// file or variable and the fix.
pub fn check_credentials(config: &Config) -> Result<(), CommandError> {
    use crate::cluster::{Credentials, credentials, resolve_context};
    let mut checked: Vec<(Option<&Path>, Option<&str>)> = Vec::new();
    for stage in &config.stages {
        let kubeconfig = config.kubeconfig_for(stage);
        let contexts: Vec<Option<&str>> = if stage.clusters.is_empty() {
            vec![None]
        } else {
            stage.clusters.iter().map(|c| Some(c.as_str())).collect()
        };
        for context in contexts {
            if checked.contains(&(kubeconfig, context)) {
                continue;
            }
            checked.push((kubeconfig, context));
            let named_in = || {
                let key = if stage.kubeconfig.is_some() {
                    format!("`kubeconfig` of stage `{}`", stage.name)
                } else {
                    "`kubeconfig`".to_owned()
                };
                format!("{key} in {}", config.path.display())
            };
            let problem = |e: crate::cluster::ClusterError| {
                let mut text = format!("stage `{}` cannot reach its cluster", stage.name);
                if kubeconfig.is_some() {
                    let _ = write!(text, " (its kubeconfig is named by {})", named_in());
                }
                CommandError::usage(anyhow::anyhow!("{text}: {}", crate::report::one_line(&e)))
            };
            match credentials(kubeconfig).map_err(problem)? {
                Credentials::Kubeconfig { file, path } => {
                    resolve_context(&file, path.as_deref(), context).map_err(problem)?;
                }
                Credentials::InCluster => {
                    if let Some(context) = context {
                        return Err(problem(
                            crate::cluster::ClusterError::NoKubeconfigForContext {
                                context: context.to_owned(),
                            },
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// An application version as an app's pipeline has one: a version (`v17.5.0`), a GitLab
/// auto-deploy version (`17.5.202411201400-abc123def45.1a2b3c4d5e6`, itself a version), or a git
/// commit SHA (7 to 40 hex digits, e.g. `$CI_COMMIT_SHA`), trimmed. Plugins get it as given, and
/// its git ref as `{{app_ref}}`.
pub fn app_version(text: &str, flag: &str) -> Result<String, CommandError> {
    let text = text.trim();
    let commit = (7..=40).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit());
    if commit || text.parse::<Version>().is_ok() {
        return Ok(text.to_owned());
    }
    Err(CommandError::usage(anyhow::anyhow!(
        "{flag}: `{text}` is neither a version (`v17.5.0`, or a GitLab auto-deploy version such as \
         `17.5.202411201400-abc123def45.1a2b3c4d5e6`) nor a git commit SHA (7 to 40 hex digits, \
         e.g. `$CI_COMMIT_SHA`)"
    )))
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
