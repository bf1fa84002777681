//! What several commands share: reading the configuration, the version and stage names, each
//! turned into a usage error (exit 2) that says what to fix.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::CommandError;
use crate::config::{self, Config};
use crate::version::{TagTemplate, Version, VersionError};

/// `--config`: the configuration file, for every command that reads one.
#[derive(Debug, Clone, Args)]
pub struct ConfigFile {
    /// The configuration file.
    #[arg(
        id = "config",
        long = "config",
        value_name = "CONFIG",
        default_value = "tagship.toml",
        env = "TAGSHIP_CONFIG"
    )]
    pub path: PathBuf,
}

impl ConfigFile {
    /// Loads and validates it.
    pub fn load(&self) -> Result<Config, CommandError> {
        load(&self.path)
    }
}

/// Loads and validates the configuration file.
pub fn load(path: &Path) -> Result<Config, CommandError> {
    config::load(path).map_err(CommandError::usage)
}

/// A version from the command line or the environment, and where it came from (`--version`,
/// `TAGSHIP_VERSION`, `CI_COMMIT_TAG`, `--to`), for messages that must name it.
#[derive(Debug, Clone)]
pub struct GivenVersion {
    /// The version.
    pub version: Version,
    /// The flag or variable it came from.
    pub source: &'static str,
}

/// The version from `--version`, else `TAGSHIP_VERSION` (clap read it), else `CI_COMMIT_TAG`.
pub fn version(given: Option<&str>) -> Result<GivenVersion, CommandError> {
    let (text, source) = match given {
        Some(text) => (text.to_owned(), source_of("--version", "TAGSHIP_VERSION")),
        None => (
            std::env::var("CI_COMMIT_TAG").map_err(|_| {
                CommandError::usage(anyhow::anyhow!(
                    "no version: pass --version v3.1.0 (or set TAGSHIP_VERSION or CI_COMMIT_TAG)"
                ))
            })?,
            "CI_COMMIT_TAG",
        ),
    };
    Ok(GivenVersion {
        version: parse_version(&text, source)?,
        source,
    })
}

/// Where the value of `flag` came from: the flag itself, or else the environment variable
/// `env` clap reads it from.
pub fn source_of(flag: &'static str, env: &'static str) -> &'static str {
    let on_command_line = std::env::args().skip(1).any(|a| {
        a == flag
            || a.strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
    });
    if on_command_line || std::env::var_os(env).is_none() {
        flag
    } else {
        env
    }
}

/// Parses a version given with `flag` (or variable).
pub fn parse_version(text: &str, flag: &str) -> Result<Version, CommandError> {
    text.parse()
        .map_err(|e| CommandError::usage(anyhow::anyhow!("{flag}: {e}")))
}

/// Parses a version given with `flag` that is to be applied: its image tag under the
/// configuration's template must be valid (see [`check_tag`]).
pub fn deployable_version(
    text: &str,
    flag: &'static str,
    config: &Config,
) -> Result<Version, CommandError> {
    let given = GivenVersion {
        version: parse_version(text, flag)?,
        source: flag,
    };
    check_tag(Some(&config.component.tag), &given)?;
    Ok(given.version)
}

/// Refuses a version whose image tag is not a valid one (build metadata: `+` is not allowed in
/// a tag), naming where the version came from and how to fix it. `template` is the
/// configuration's `[component].tag`; `None` for a command without a configuration (`trigger`:
/// the deploy project renders the tag, and no template makes a `+` valid).
pub fn check_tag(template: Option<&TagTemplate>, given: &GivenVersion) -> Result<(), CommandError> {
    let source = given.source;
    let problem = match template {
        Some(template) => match template.render_checked(&given.version) {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        },
        None => match TagTemplate::default().render_checked(&given.version) {
            Ok(_) => return Ok(()),
            Err(VersionError::InvalidTag { why, .. }) => format!(
                "`{}` cannot become an image tag (the deploy project makes one of it with its tag template): {why}",
                given.version
            ),
            Err(e) => e.to_string(),
        },
    };
    let plain: Option<Version> =
        given
            .version
            .without_build()
            .parse()
            .ok()
            .filter(|plain: &Version| {
                template
                    .map_or_else(
                        || TagTemplate::default().render_checked(plain),
                        |t| t.render_checked(plain),
                    )
                    .is_ok()
            });
    let hint = match (plain, source) {
        (Some(plain), "TAGSHIP_VERSION") => {
            format!("build metadata cannot be part of an image tag: set `TAGSHIP_VERSION={plain}`")
        }
        (Some(plain), "CI_COMMIT_TAG") => format!(
            "build metadata cannot be part of an image tag: pass `--version {plain}` (the Git tag `{}` cannot name an image)",
            given.version
        ),
        (Some(plain), flag) => {
            format!("build metadata cannot be part of an image tag: pass `{flag} {plain}`")
        }
        (None, _) => format!(
            "give {source} a version whose tag has only letters, digits, `_`, `.` and `-`, at most 128 characters"
        ),
    };
    Err(CommandError::usage_with_hint(
        format!("{source}: {problem}"),
        hint,
    ))
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
                CommandError::usage(anyhow::anyhow!("{text}: {}", crate::terminal::one_line(&e)))
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

/// Refuses `--approve STAGE` for a stage without a manual gate: approving it would do nothing,
/// and the person most likely meant another stage. Names the gated stages, or says there are
/// none.
pub fn require_gated(config: &Config, stage: &str) -> Result<(), CommandError> {
    approvable(config, stage)
        .map_err(|(message, hint)| CommandError::usage_with_hint(message, hint))
}

/// The message and hint of [`require_gated`], or `Ok` for a stage behind a manual gate.
fn approvable(config: &Config, stage: &str) -> Result<(), (String, String)> {
    if config
        .stage(stage)
        .is_none_or(|s| s.gate == crate::config::Gate::Manual)
    {
        return Ok(());
    }
    let gated: Vec<&str> = config
        .stages
        .iter()
        .filter(|s| s.gate == crate::config::Gate::Manual)
        .map(|s| s.name.as_str())
        .collect();
    let message = format!(
        "--approve {stage}: stage `{stage}` has no manual gate in {}, so there is nothing to approve",
        config.path.display()
    );
    let hint = if gated.is_empty() {
        "no stage has a manual gate (`gate = \"manual\"`); leave out --approve".to_owned()
    } else {
        format!(
            "--approve names a stage with `gate = \"manual\"`: {}",
            crate::config::quoted_list(gated.iter().copied())
        )
    };
    Err((message, hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(gates: &[(&str, &str)]) -> Config {
        let mut text = String::from(
            "[component]\nname = \"registry\"\nimage = \"registry.example.com/registry\"\n",
        );
        for (name, gate) in gates {
            let _ = write!(
                text,
                "[[stage]]\nname = \"{name}\"\nenvironment = \"{name}\"\nnamespace = \"gitlab\"\nworkloads = [{{ deployment = \"gitlab-registry\" }}]\ngate = \"{gate}\"\n"
            );
        }
        crate::config::parse(&text, Path::new("tagship.toml")).expect("a valid configuration")
    }

    #[test]
    fn only_stages_behind_a_manual_gate_can_be_approved() {
        let two = config(&[("gstg", "auto"), ("gprd", "manual"), ("gprd-2", "manual")]);
        let none = config(&[("gstg", "auto")]);
        let cases = [
            (&two, "gprd", None),
            (
                &two,
                "gstg",
                Some((
                    "--approve gstg: stage `gstg` has no manual gate in tagship.toml, so there is nothing to approve",
                    "--approve names a stage with `gate = \"manual\"`: `gprd`, `gprd-2`",
                )),
            ),
            (
                &none,
                "gstg",
                Some((
                    "--approve gstg: stage `gstg` has no manual gate in tagship.toml, so there is nothing to approve",
                    "no stage has a manual gate (`gate = \"manual\"`); leave out --approve",
                )),
            ),
        ];
        for (config, stage, expected) in cases {
            let got = approvable(config, stage).err();
            let expected = expected.map(|(m, h)| (m.to_owned(), h.to_owned()));
            assert_eq!(got, expected, "{stage}");
        }
    }
}
