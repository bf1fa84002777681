//! What a deploy is asked to do: the stages in order, resolved from the configuration and the
//! command line. Plain data.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::context::EventKind;
use crate::version::Version;

/// Whether a stage may be entered without a person's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Entered as soon as the previous stage succeeded.
    Auto,
    /// Entered only with `--approve STAGE`.
    Manual,
}

/// What an `unknown` health verdict means during the bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPolicy {
    /// Counts as a failure.
    Fail,
    /// Counts as a success.
    Pass,
    /// Counts as neither; the bake goes on checking.
    Wait,
}

/// The bake of a stage: health checks every `interval` for `duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BakePlan {
    /// Health plugins to run at each interval.
    pub checks: Vec<String>,
    /// How long the stage must stay healthy.
    pub duration: Duration,
    /// Time between two rounds of checks.
    pub interval: Duration,
    /// Wait before the first round.
    pub initial_delay: Duration,
    /// Failed rounds tolerated; the bake fails when failures exceed it.
    pub failure_limit: u32,
    /// Check errors (a plugin that crashed or errored) in a row tolerated.
    pub consecutive_error_limit: u32,
    /// What `unknown` means.
    pub unknown: UnknownPolicy,
}

/// Whether a run may deploy a version older than the one live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Downgrade {
    /// Refused (the default): newer never loses to older.
    #[default]
    Refused,
    /// Allowed (`--allow-downgrade`), but not below the environment's post-deployment
    /// migration watermark.
    Allowed,
    /// Allowed below the watermark too (`--allow-downgrade --force`), as `tagship rollback
    /// --force` allows it.
    BelowWatermark,
}

/// One stage, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// Stage name, e.g. `gstg-cny`.
    pub name: String,
    /// Its environment, e.g. `gstg`.
    pub environment: String,
    /// Auto or manual.
    pub gate: Gate,
    /// True for the first stage of its environment: pre-deployment migrations run here.
    pub first_of_environment: bool,
    /// True for the last stage of its environment: its lock is released after it.
    pub last_of_environment: bool,
    /// True when post-deployment migrations run after this stage.
    pub post_migrations_after: bool,
    /// Plugins (health and compat) that must pass before anything changes.
    pub pre_checks: Vec<String>,
    /// The bake, if any.
    pub bake: Option<BakePlan>,
    /// The notifiers that hear this stage's events.
    pub notify: Vec<String>,
}

/// A whole deploy run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The component, e.g. `registry`.
    pub component: String,
    /// The version to deploy.
    pub target: Version,
    /// Stages in order.
    pub stages: Vec<StagePlan>,
    /// Manual stages approved for this run (`--approve`).
    pub approved: BTreeSet<String>,
    /// Stop after this stage (`--until`).
    pub until: Option<String>,
    /// Whether deploying below the live version is allowed.
    pub downgrade: Downgrade,
    /// Pre-deployment migrations are configured.
    pub pre_migrations: bool,
    /// Post-deployment migrations are configured.
    pub post_migrations: bool,
    /// How long to wait for an environment's lock held by someone else.
    pub lock_wait: Duration,
    /// The lock's time to live; it is renewed every third of it while the run works.
    pub lock_ttl: Duration,
    /// The event kinds each notifier that filters them hears (its `events`); a notifier not
    /// here hears every kind.
    pub notifier_events: BTreeMap<String, BTreeSet<EventKind>>,
    /// Identifies this run in events and history.
    pub deploy_id: String,
    /// The CI pipeline running it.
    pub pipeline_url: Option<String>,
    /// The application's version, for compat checks (`--app-version`), when known.
    pub app_version: Option<String>,
    /// The command line this run was started with, for the follow-up commands it prints
    /// (approving a gate, finishing an interrupted run): the CLI gives it, flags and all, so a
    /// copy-paste runs against the same configuration. Empty when unknown (tests).
    pub command: CommandLine,
}

/// A `tagship` command line as data: the words after `tagship`, e.g. `deploy --config
/// ci/tagship.toml --version v3.1.0 --until gstg`. Displays as the command to type, each word
/// quoted for a POSIX shell where needed. Holds no secret: the CLI builds it from flags only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine(Vec<String>);

impl CommandLine {
    /// The command line of these words (without `tagship`).
    pub fn new<W: Into<String>>(words: impl IntoIterator<Item = W>) -> Self {
        CommandLine(words.into_iter().map(Into::into).collect())
    }

    /// The same command line with `words` appended, e.g. `["--approve", "gprd"]`.
    #[must_use]
    pub fn with(&self, words: &[&str]) -> Self {
        let mut more = self.clone();
        more.0.extend(words.iter().map(|w| (*w).to_owned()));
        more
    }

    /// The value given to `flag` (e.g. `--config`), if it is there.
    pub fn value_of(&self, flag: &str) -> Option<&str> {
        self.0
            .windows(2)
            .find(|pair| pair[0] == flag)
            .map(|pair| pair[1].as_str())
    }

    /// Whether no command line is known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tagship")?;
        for word in &self.0 {
            write!(f, " {}", shell_quoted(word))?;
        }
        Ok(())
    }
}

/// `word` as a POSIX shell reads it back: as it is when it has only safe characters, else in
/// single quotes (`'it'\''s'`).
pub fn shell_quoted(word: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', "'\\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_print_as_typed_with_words_quoted_only_where_a_shell_needs_it() {
        let cases = [
            (
                vec![
                    "deploy",
                    "--config",
                    "ci/tagship.toml",
                    "--version",
                    "v3.1.0",
                ],
                "tagship deploy --config ci/tagship.toml --version v3.1.0",
            ),
            (
                vec!["deploy", "--config", "my deploys/tagship.toml"],
                "tagship deploy --config 'my deploys/tagship.toml'",
            ),
            (
                vec!["deploy", "--json-report", "it's.json"],
                "tagship deploy --json-report 'it'\\''s.json'",
            ),
            (
                vec!["deploy", "--app-version", ""],
                "tagship deploy --app-version ''",
            ),
            (
                vec!["deploy", "--config", "$HOME/x.toml"],
                "tagship deploy --config '$HOME/x.toml'",
            ),
        ];
        for (words, printed) in cases {
            assert_eq!(CommandLine::new(words).to_string(), printed);
        }
    }

    #[test]
    fn a_command_line_grows_by_words_and_tells_a_flag_s_value() {
        let line = CommandLine::new(["rollback", "--config", "t.toml", "--stage", "gprd"]);
        assert_eq!(line.value_of("--config"), Some("t.toml"));
        assert_eq!(line.value_of("--to"), None);
        assert_eq!(
            line.with(&["--to", "v3.0.0"]).to_string(),
            "tagship rollback --config t.toml --stage gprd --to v3.0.0"
        );
        assert!(CommandLine::default().is_empty());
    }
}
