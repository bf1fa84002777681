//! The command line: clap definitions (their doc comments are the `--help`) and one function
//! per command. The only place that prints errors and decides exit codes.

mod common;
mod compat;
mod deploy;
mod inspect;
mod lock;
mod plugin;
mod rollback;
mod signal;
mod trigger;
mod view;

use std::fmt::Write as _;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

use crate::exit::{EXIT_CODES_HELP, Outcome};

/// `tagship --version`: the release and the plugin API (WIT package) it speaks, so a plugin
/// author knows which `wit/tagship.wit` to build against.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (plugin API tagship:plugin@",
    "0.1.0",
    ")"
);

/// tagship walks a tagged release through its stages: lock, migrations, server-side apply,
/// rollout, health checks, rollback, gates and notifications. Checks and notifiers are
/// sandboxed WebAssembly component plugins.
#[derive(Debug, Parser)]
#[command(name = "tagship", version = VERSION, after_help = EXIT_CODES_HELP, max_term_width = 100)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). `TAGSHIP_LOG` (a tracing filter) overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// How a command prints state on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// tagship's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy a version through every stage of tagship.toml: lock, pre-checks, migrations,
    /// server-side apply, rollout, bake, rollback on failure, manual gates, notifications.
    /// Re-running the same command finishes an interrupted run and changes nothing where the
    /// cluster already matches.
    Deploy(deploy::DeployArgs),
    /// What `deploy --version V` would do, per stage: live → target, the action (deploy,
    /// resume, nothing, await approval, refuse a downgrade), the lock holder, health now.
    /// Reads only. Exit 1 when a stage cannot be read.
    Plan(inspect::PlanArgs),
    /// Per stage: the live versions in every cluster, rollout state, lock holder, migration
    /// watermark, health now and the last change. Reads only. Exit 1 when a stage cannot be read.
    Status(inspect::StatusArgs),
    /// Return a stage (all its clusters) to an earlier version, under the environment's lock.
    /// Refused below the post-deployment migration watermark unless `--force` (exit 6).
    Rollback(rollback::RollbackArgs),
    /// What tagship did to a stage: deploys, rollbacks and failures, oldest first, with
    /// versions, who, when, the pipeline and the reason.
    History(inspect::HistoryArgs),
    /// Is the registry live in each stage compatible with app version V? Runs each stage's
    /// compat plugins against every version live there. The pre-check before the app's
    /// auto-deploy. Exit 0 compatible, 1 incompatible, 3 undecided (fails closed).
    CheckCompat(compat::CheckCompatArgs),
    /// From the service's tag pipeline: start the deploy project's pipeline through GitLab's
    /// pipeline trigger API, passing the version and this pipeline's URL as variables; prints
    /// the new pipeline's URL. Retries 5xx; 401/404 exit 2.
    Trigger(trigger::TriggerArgs),
    /// The deploy lock of an environment, shared with other deployers (e.g. the app's
    /// auto-deploy): acquire, release, status.
    #[command(subcommand)]
    Lock(lock::LockCommand),
    /// Print a shell completion script, e.g. `tagship completions bash >
    /// /etc/bash_completion.d/tagship`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `tagship man > /usr/local/share/man/man1/tagship.1`, or
    /// write one page per command into a directory.
    Man {
        /// Write `tagship.1`, `tagship-deploy.1`, … into this directory instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Tools for plugin authors: inspect a plugin, or run it once in the sandbox.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Sets up logging to stderr.
pub fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    // kube's client logs each failed attempt at ERROR; tagship retries them and reports what
    // matters itself, so they are shown only with -v.
    let kube = if cli.verbose == 0 { "off" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAGSHIP_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,kube_client={kube},tagship={default}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}

/// Runs a command to its outcome, printing any error with its causes and a hint.
pub async fn run(cli: Cli) -> Outcome {
    let result = match cli.command {
        Command::Plugin(command) => plugin::run(command).await,
        Command::Lock(command) => lock::run(command).await,
        Command::Deploy(args) => Box::pin(deploy::run(args)).await,
        Command::Plan(args) => Box::pin(inspect::run_plan(args)).await,
        Command::Status(args) => Box::pin(inspect::run_status(args)).await,
        Command::Rollback(args) => Box::pin(rollback::run(args)).await,
        Command::History(args) => inspect::run_history(args).await,
        Command::CheckCompat(args) => Box::pin(compat::run(args)).await,
        Command::Trigger(args) => trigger::run(args).await,
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tagship", &mut out);
            crate::terminal::stdout_line(String::from_utf8_lossy(&out).trim_end());
            Ok(Outcome::Done)
        }
        Command::Man { out_dir: Some(dir) } => clap_mangen::generate_to(Cli::command(), &dir)
            .map(|()| {
                crate::terminal::stderr_line(&format!("wrote the man pages to {}", dir.display()));
                Outcome::Done
            })
            .map_err(|e| {
                CommandError::usage(
                    anyhow::Error::new(e)
                        .context(format!("cannot write the man pages to {}", dir.display())),
                )
            }),
        Command::Man { out_dir: None } => {
            let mut out = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut out) {
                Ok(()) => {
                    crate::terminal::stdout_line(String::from_utf8_lossy(&out).trim_end());
                    Ok(Outcome::Done)
                }
                Err(e) => Err(CommandError::new(Outcome::Failed, e)),
            }
        }
    };
    result.unwrap_or_else(|error| {
        report_error(&error.error);
        error.outcome
    })
}

/// An error on its way out of a command, with the exit outcome it means.
#[derive(Debug)]
pub struct CommandError {
    error: anyhow::Error,
    outcome: Outcome,
}

impl CommandError {
    /// An error that exits with `outcome`.
    pub fn new(outcome: Outcome, error: impl Into<anyhow::Error>) -> Self {
        CommandError {
            error: error.into(),
            outcome,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Outcome::Usage, error)
    }

    /// A usage error (exit 2) whose fix is known: `hint` is printed as its `hint:` line.
    pub fn usage_with_hint(message: String, hint: String) -> Self {
        Self::usage(Hinted { message, hint })
    }
}

/// An error that says how to fix it; [`report_error`] prints the fix as a `hint:` line.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Hinted {
    message: String,
    hint: String,
}

fn report_error(error: &anyhow::Error) {
    let mut text = format!("error: {error}");
    for cause in error.chain().skip(1) {
        let _ = write!(text, "\n  caused by: {cause}");
    }
    if let Some(hint) = error.chain().find_map(hint_for) {
        let _ = write!(text, "\nhint: {hint}");
    }
    crate::terminal::stderr_line(&text);
}

fn hint_for(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    use crate::gitlab::TriggerError;
    use crate::plugins::PluginError;
    if let Some(e) = cause.downcast_ref::<Hinted>() {
        return Some(e.hint.clone());
    }
    if let Some(e) = cause.downcast_ref::<TriggerError>() {
        return match e {
            TriggerError::Unauthorized { .. } => Some("create a pipeline trigger token in the deploy project (Settings > CI/CD > Pipeline trigger tokens) and store it in a masked variable".into()),
            TriggerError::NotFound { .. } => Some("--project takes the deploy project's numeric id or full path (`group/project`), and the token must belong to that project".into()),
            _ => None,
        };
    }
    match cause.downcast_ref::<PluginError>()? {
        PluginError::CpuLimit { .. } | PluginError::MemoryLimit { .. } | PluginError::WallTimeout { .. } => {
            Some("raise the plugin's limit in tagship.toml ([plugins.NAME.limits]) if the work is legitimate".into())
        }
        PluginError::UnknownBuiltin { name, .. } => Some(match crate::config::closest_builtin(name) {
            Some(builtin) => format!("did you mean `builtin:{builtin}`?"),
            None => "use `builtin:NAME` with a name listed above, or a path to a .wasm file".into(),
        }),
        PluginError::IncompatibleApi { .. } => Some("`tagship plugin inspect FILE` shows the API version a plugin was built against".into()),
        _ => None,
    }
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn the_version_names_the_plugin_api_this_tagship_speaks() {
        assert!(
            super::VERSION.ends_with(&format!(
                " (plugin API tagship:plugin@{})",
                crate::plugins::API_VERSION
            )),
            "{}",
            super::VERSION
        );
    }
}
