//! `tagship lock acquire|release|status|run`: the deploy lock, for every deployer.
//!
//! The lock of an environment is a `coordination.k8s.io/v1` Lease in the environment's first
//! cluster (`[lock]` in tagship.toml). `tagship deploy` takes it per environment; other
//! deployers (the app's auto-deploy) take the same Lease with these commands, so deploys of the
//! registry and of the app never overlap. Every command here takes the lock the way a deploy
//! does ([`EnvironmentLock`]): within the wait, renewed while `lock run`'s command runs.

use std::fmt::Write as _;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::common::ConfigFile;

use super::{CommandError, OutputFormat, common};
use crate::cluster::LockInfo;
use crate::config::{Config, parse_duration};
use crate::exit::Outcome;
use crate::holder::Holder;
use crate::holder::{holder_parts, holder_text};
use crate::lifecycle::{EnvironmentLock, LockFailure};
use crate::terminal;
use crate::wiring::KubePorts;

/// Take, give back, look at, or run a command under an environment's deploy lock.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Take the lock, waiting up to `--wait` while someone else holds it (exit 4 if they still
    /// do; exit 3 if the lock cannot be read or written). The lock expires after `--ttl` unless
    /// taken again (which renews it): release it when done, or use `lock run`.
    Acquire(AcquireArgs),
    /// Give the lock back, if `--holder` holds it. Someone else's lock is never released.
    Release(TargetArgs),
    /// Show who holds the lock (the person or pipeline, and which run), since when, why, and
    /// when it expires.
    Status(TargetArgs),
    /// Take the lock, run a command while holding it (renewed every third of `--ttl`), pass
    /// SIGINT and SIGTERM on to the command, release the lock however the command ends, and
    /// exit with the command's code (4 if the lock was not acquired, 3 if it cannot be read or
    /// written, 1 if it was lost while the command ran: the command is then stopped). For the
    /// app's auto-deploy:
    /// `tagship lock run --stage gstg --holder rails-auto-deploy -- ./deploy-the-app.sh`.
    Run(RunArgs),
}

/// Which lock, and as whom.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The stage whose environment's lock it is (or use `--environment`).
    #[arg(
        long,
        required_unless_present = "environment",
        conflicts_with = "environment"
    )]
    pub stage: Option<String>,

    /// The environment whose lock it is.
    #[arg(long)]
    pub environment: Option<String>,

    #[command(flatten)]
    pub config: ConfigFile,

    /// Who takes or releases it. With `acquire` and `release`, exactly this identity (so a
    /// later `release --holder H` finds it); with `run`, this name plus the run. Default:
    /// `TAGSHIP_HOLDER`, else the GitLab user (`GITLAB_USER_LOGIN`), else `USER@HOSTNAME`,
    /// plus the run (the CI pipeline and job, else a random id per process).
    #[arg(long)]
    pub holder: Option<String>,

    /// Output format of `status`.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `lock acquire` arguments.
#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// Which lock, and as whom.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Why, shown to whoever finds the lock held.
    #[arg(long, default_value = "manual lock")]
    pub reason: String,

    /// How long the lock lasts unless renewed (e.g. `30m`). Default: `[lock].ttl`.
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<Duration>,

    /// How long to wait while someone else holds it (e.g. `10m`, `0s`). Default: `[lock].wait`.
    #[arg(long, value_parser = parse_duration)]
    pub wait: Option<Duration>,
}

/// `lock run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which lock, as whom, how long, why.
    #[command(flatten)]
    pub lock: AcquireArgs,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Runs a `lock` subcommand.
pub async fn run(command: LockCommand) -> Result<Outcome, CommandError> {
    match command {
        LockCommand::Acquire(args) => acquire(args).await,
        LockCommand::Release(args) => release(args).await,
        LockCommand::Status(args) => status(args).await,
        LockCommand::Run(args) => Box::pin(run_under_lock(args)).await,
    }
}

/// The configuration and the environment a lock command is about.
fn target(args: &TargetArgs) -> Result<(Config, String), CommandError> {
    let config = args.config.load()?;
    common::check_credentials(&config)?;
    let environment = match (&args.stage, &args.environment) {
        (Some(stage), _) => {
            common::require_stage(&config, stage)?;
            config
                .stage(stage)
                .map(|s| s.environment.clone())
                .unwrap_or_default()
        }
        (None, Some(environment)) => environment.clone(),
        (None, None) => {
            return Err(CommandError::usage(anyhow::anyhow!(
                "give --stage or --environment"
            )));
        }
    };
    if config.lock_namespace(&environment).is_none() {
        let known: Vec<&str> = config.environments().iter().map(|e| e.name).collect();
        return Err(CommandError::usage(anyhow::anyhow!(
            "no stage of {} is in environment `{environment}`; the environments are: {}",
            args.config.path.display(),
            known.join(", ")
        )));
    }
    Ok((config, environment))
}

/// Takes the lock of `environment` through `ports`, as a deploy does; the failure as an error
/// with its exit code.
async fn take(
    ports: &KubePorts<'_>,
    environment: &str,
    wait: Duration,
    ttl: Duration,
) -> Result<(), CommandError> {
    let lock = EnvironmentLock::new(ports, &crate::progress::Lines, environment, None, wait, ttl);
    let told = async |holder: &crate::lifecycle::ports::Holder| {
        terminal::stderr_line(&format!(
            "the lock of `{environment}` is held by {holder}; waiting up to {}s",
            wait.as_secs()
        ));
    };
    match lock.acquire(told).await {
        Ok(()) => Ok(()),
        Err(LockFailure::Held(holder)) => Err(CommandError::new(
            Outcome::LockTimeout,
            anyhow::anyhow!(
                "the lock of `{environment}` is held by {holder}; gave up after waiting {}s",
                wait.as_secs()
            ),
        )),
        Err(LockFailure::Unavailable(why)) => Err(CommandError::new(
            Outcome::Blocked,
            anyhow::anyhow!("{why}"),
        )),
    }
}

fn holder(args: &TargetArgs, reason: &str, with_run: bool) -> Holder {
    let id = match (&args.holder, with_run) {
        (Some(name), false) => name.clone(),
        (Some(name), true) => format!(
            "{name}#{}",
            holder_parts(&crate::wiring::default_holder())
                .1
                .unwrap_or("run")
        ),
        (None, _) => crate::wiring::default_holder(),
    };
    Holder {
        who: id,
        reason: Some(reason.to_owned()),
        pipeline_url: std::env::var("CI_PIPELINE_URL").ok(),
        since: None,
    }
}

fn describe(info: &LockInfo) -> String {
    let mut text = format!("held by {}", info.holder);
    if info.expired {
        text.push_str("; expired, anyone may take it");
    } else if let Some(left) = info.expires_in {
        let _ = write!(text, "; expires in {}s unless renewed", left.as_secs());
    }
    text
}

async fn acquire(args: AcquireArgs) -> Result<Outcome, CommandError> {
    let (config, environment) = target(&args.target)?;
    let ttl = args.ttl.unwrap_or(config.lock.ttl);
    let wait = args.wait.unwrap_or(config.lock.wait);
    let holder = holder(&args.target, &args.reason, false);
    let id = holder.who.clone();
    let ports = KubePorts::new(&config, holder).with_lock_ttl(ttl);
    take(&ports, &environment, wait, ttl).await?;
    terminal::stderr_line(&format!(
        "acquired the lock of `{environment}` (lease `{}` in namespace `{}`) as {} for {}s",
        config.lease_name(&environment),
        config.lock_namespace(&environment).unwrap_or_default(),
        holder_text(&id),
        ttl.as_secs()
    ));
    Ok(Outcome::Done)
}

async fn release(args: TargetArgs) -> Result<Outcome, CommandError> {
    let (config, environment) = target(&args)?;
    let holder = holder(&args, "", false);
    let id = holder.who.clone();
    let ports = KubePorts::new(&config, holder);
    let released = ports
        .release_lock(&environment)
        .await
        .map_err(|e| CommandError::new(Outcome::Failed, e))?;
    if released {
        terminal::stderr_line(&format!("released the lock of `{environment}`"));
    } else {
        terminal::stderr_line(&format!(
            "the lock of `{environment}` is not held by {}; nothing released",
            holder_text(&id)
        ));
    }
    Ok(Outcome::Done)
}

async fn status(args: TargetArgs) -> Result<Outcome, CommandError> {
    let (config, environment) = target(&args)?;
    let ports = KubePorts::new(&config, holder(&args, "", false));
    let info = ports
        .lock_status(&environment)
        .await
        .map_err(|e| CommandError::new(Outcome::Failed, e))?;
    match args.output {
        OutputFormat::Json => {
            let who_and_run = info.as_ref().map(|i| holder_parts(&i.holder.who));
            terminal::stdout_json(&serde_json::json!({
                "environment": environment,
                "lease": config.lease_name(&environment),
                "namespace": config.lock_namespace(&environment),
                "held": info.as_ref().is_some_and(|i| !i.expired),
                "holder": info.as_ref().map(|i| &i.holder.who),
                "holder_who": who_and_run.map(|(who, _)| who),
                "holder_run": who_and_run.and_then(|(_, run)| run),
                "reason": info.as_ref().and_then(|i| i.holder.reason.as_ref()),
                "pipeline_url": info.as_ref().and_then(|i| i.holder.pipeline_url.as_ref()),
                "since": info.as_ref().and_then(|i| i.holder.since.as_ref()),
                "expires_in_seconds": info.as_ref().and_then(|i| i.expires_in).map(|d| d.as_secs()),
                "expired": info.as_ref().is_some_and(|i| i.expired),
            }));
        }
        OutputFormat::Text => terminal::stdout_line(&match &info {
            Some(info) => format!("{environment}: {}", describe(info)),
            None => format!("{environment}: free"),
        }),
    }
    Ok(Outcome::Done)
}

/// `lock run`: take the lock, run the command under it, release it, exit with its code.
async fn run_under_lock(args: RunArgs) -> Result<Outcome, CommandError> {
    let (config, environment) = target(&args.lock.target)?;
    let ttl = args.lock.ttl.unwrap_or(config.lock.ttl);
    let wait = args.lock.wait.unwrap_or(config.lock.wait);
    let reason = if args.lock.reason == "manual lock" {
        format!("running `{}`", args.command.join(" "))
    } else {
        args.lock.reason.clone()
    };
    let holder = holder(&args.lock.target, &reason, true);
    let id = holder.who.clone();
    let ports = KubePorts::new(&config, holder).with_lock_ttl(ttl);
    take(&ports, &environment, wait, ttl).await?;
    terminal::stderr_line(&format!(
        "holding the lock of `{environment}` as {}; running `{}`",
        holder_text(&id),
        args.command.join(" ")
    ));
    let lock = EnvironmentLock::new(
        &ports,
        &crate::progress::Lines,
        &environment,
        None,
        wait,
        ttl,
    );
    let outcome = run_command(&args.command, &lock).await;
    lock.release().await;
    outcome
}

/// Runs `command` while `lock` is held; its exit code, or why it could not run or was stopped.
async fn run_command(
    command: &[String],
    lock: &EnvironmentLock<'_, KubePorts<'_>, crate::progress::Lines>,
) -> Result<Outcome, CommandError> {
    let Some((program, arguments)) = command.split_first() else {
        return Err(CommandError::usage(anyhow::anyhow!(
            "give the command to run after `--`"
        )));
    };
    let mut child = tokio::process::Command::new(program)
        .args(arguments)
        .spawn()
        .map_err(|e| {
            CommandError::new(
                Outcome::Failed,
                anyhow::anyhow!("cannot run `{program}`: {e}"),
            )
        })?;
    let pid = child.id();
    let waited = lock
        .hold(async {
            loop {
                tokio::select! {
                    status = child.wait() => return status,
                    signal = super::signal::shutdown_signal() => {
                        terminal::stderr_line(&format!("{signal}: passing it on to `{program}`"));
                        pass_on(pid, signal);
                    }
                }
            }
        })
        .await;
    match waited {
        Ok(Ok(status)) => Ok(Outcome::Command(exit_code(status))),
        Ok(Err(e)) => Err(CommandError::new(
            Outcome::Failed,
            anyhow::anyhow!("cannot wait for `{program}`: {e}"),
        )),
        Err(lost) => {
            // The lock is no one's to rely on now: stop the command, as a deploy stops.
            pass_on(pid, "SIGTERM");
            let ended = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
            if ended.is_err() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            Err(CommandError::new(
                Outcome::Failed,
                anyhow::anyhow!("the lock {lost}; stopped `{program}`"),
            ))
        }
    }
}

/// The exit code a shell gives for `status`: its code, or 128 plus the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

/// Sends `signal` (`SIGINT` or `SIGTERM`) to the process `pid`, if it still runs.
#[allow(
    unsafe_code,
    reason = "kill(2) is the only way to pass a signal on to a child; it takes plain integers and \
              touches no memory of ours"
)]
fn pass_on(pid: Option<u32>, signal: &str) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    let number = if signal == "SIGINT" {
        libc::SIGINT
    } else {
        libc::SIGTERM
    };
    // SAFETY: kill(2) with a pid of our own child and a valid signal number; a child that has
    // already exited makes it fail with ESRCH, which is ignored.
    unsafe {
        libc::kill(pid, number);
    }
}
