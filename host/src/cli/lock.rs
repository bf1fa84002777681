//! `tagship lock acquire|release|status`: the deploy lock, for every deployer.
//!
//! The lock of an environment is a `coordination.k8s.io/v1` Lease in the environment's first
//! cluster (`[lock]` in tagship.toml). `tagship deploy` takes it per environment; other
//! deployers (the app's auto-deploy) take the same Lease with these commands, so deploys of the
//! registry and of the app never overlap.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{CommandError, OutputFormat};
use crate::cluster::{Holder, KubeCluster, LockAttempt, LockInfo};
use crate::config::{self, Config, parse_duration};
use crate::exit::Outcome;
use crate::report;

/// Take, give back or look at an environment's deploy lock.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Take the lock, waiting up to `--wait` while someone else holds it (exit 4 if they still
    /// do). The lock expires after `--ttl` unless taken again (which renews it): release it
    /// when done.
    Acquire(AcquireArgs),
    /// Give the lock back, if `--holder` holds it. Someone else's lock is never released.
    Release(TargetArgs),
    /// Show who holds the lock, since when, why, and when it expires.
    Status(TargetArgs),
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

    /// The configuration file.
    #[arg(long, default_value = "tagship.toml", env = "TAGSHIP_CONFIG")]
    pub config: PathBuf,

    /// Who takes or releases it. Default: `TAGSHIP_HOLDER`, else the CI job
    /// (`GITLAB_USER_LOGIN` and `CI_JOB_ID`), else `USER@HOSTNAME`.
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

/// Runs a `lock` subcommand.
pub async fn run(command: LockCommand) -> Result<Outcome, CommandError> {
    match command {
        LockCommand::Acquire(args) => acquire(args).await,
        LockCommand::Release(args) => release(args).await,
        LockCommand::Status(args) => status(args).await,
    }
}

/// The lock's place: the connection, namespace and Lease name.
struct LockPlace {
    cluster: KubeCluster,
    namespace: String,
    lease: String,
    environment: String,
    config: Config,
}

async fn place(args: &TargetArgs) -> Result<LockPlace, CommandError> {
    let config = config::load(&args.config).map_err(CommandError::usage)?;
    super::common::check_credentials(&config)?;
    let environment = match (&args.stage, &args.environment) {
        (Some(stage), _) => config
            .stage(stage)
            .map(|s| s.environment.clone())
            .ok_or_else(|| {
                CommandError::usage(anyhow::anyhow!(
                    "there is no stage `{stage}` in {}",
                    args.config.display()
                ))
            })?,
        (None, Some(environment)) => environment.clone(),
        (None, None) => {
            return Err(CommandError::usage(anyhow::anyhow!(
                "give --stage or --environment"
            )));
        }
    };
    let first = config
        .stages
        .iter()
        .find(|s| s.environment == environment)
        .ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!(
                "no stage of {} is in environment `{environment}`",
                args.config.display()
            ))
        })?;
    let namespace = config
        .lock_namespace(&environment)
        .unwrap_or(&first.namespace)
        .to_owned();
    let cluster = KubeCluster::connect(
        config.kubeconfig_for(first),
        first.clusters.first().map(String::as_str),
    )
    .await
    .with_context(|| format!("connecting to the first cluster of environment `{environment}`"))
    .map_err(CommandError::usage)?;
    Ok(LockPlace {
        cluster,
        namespace,
        lease: config.lease_name(&environment),
        environment,
        config,
    })
}

fn describe(info: &LockInfo) -> String {
    let mut text = format!("held by `{}`", info.holder);
    if let Some(since) = &info.since {
        let _ = write!(text, " since {since}");
    }
    if let Some(reason) = &info.reason {
        let _ = write!(text, " ({reason})");
    }
    if let Some(url) = &info.pipeline_url {
        let _ = write!(text, " {url}");
    }
    if info.expired {
        text.push_str("; expired, anyone may take it");
    } else if let Some(left) = info.expires_in {
        let _ = write!(text, "; expires in {}s unless renewed", left.as_secs());
    }
    text
}

async fn acquire(args: AcquireArgs) -> Result<Outcome, CommandError> {
    let place = place(&args.target).await?;
    let holder = Holder {
        id: args
            .target
            .holder
            .clone()
            .unwrap_or_else(crate::deploy::default_holder),
        reason: args.reason.clone(),
        pipeline_url: std::env::var("CI_PIPELINE_URL").ok(),
    };
    let ttl = args.ttl.unwrap_or(place.config.lock.ttl);
    let wait = args.wait.unwrap_or(place.config.lock.wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut told = false;
    loop {
        let attempt = place
            .cluster
            .lock_try_acquire(&place.namespace, &place.lease, &holder, ttl)
            .await
            .map_err(|e| CommandError::new(Outcome::Failed, e))?;
        match attempt {
            LockAttempt::Acquired => {
                report::stderr_line(&format!(
                    "acquired the lock of `{}` (lease `{}` in namespace `{}`) as `{}` for {}s",
                    place.environment,
                    place.lease,
                    place.namespace,
                    holder.id,
                    ttl.as_secs()
                ));
                return Ok(Outcome::Done);
            }
            LockAttempt::Held(info) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(CommandError::new(
                        Outcome::LockTimeout,
                        anyhow::anyhow!(
                            "the lock of `{}` is {}; gave up after waiting {}s",
                            place.environment,
                            describe(&info),
                            wait.as_secs()
                        ),
                    ));
                }
                if !told {
                    report::stderr_line(&format!(
                        "the lock of `{}` is {}; waiting up to {}s",
                        place.environment,
                        describe(&info),
                        wait.as_secs()
                    ));
                    told = true;
                }
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(left.min(Duration::from_secs(2))).await;
    }
}

async fn release(args: TargetArgs) -> Result<Outcome, CommandError> {
    let place = place(&args).await?;
    let holder = Holder {
        id: args
            .holder
            .clone()
            .unwrap_or_else(crate::deploy::default_holder),
        reason: String::new(),
        pipeline_url: None,
    };
    let released = place
        .cluster
        .lock_release(&place.namespace, &place.lease, &holder)
        .await
        .map_err(|e| CommandError::new(Outcome::Failed, e))?;
    if released {
        report::stderr_line(&format!("released the lock of `{}`", place.environment));
    } else {
        report::stderr_line(&format!(
            "the lock of `{}` is not held by `{}`; nothing released",
            place.environment, holder.id
        ));
    }
    Ok(Outcome::Done)
}

async fn status(args: TargetArgs) -> Result<Outcome, CommandError> {
    let place = place(&args).await?;
    let info = place
        .cluster
        .lock_status(&place.namespace, &place.lease)
        .await
        .map_err(|e| CommandError::new(Outcome::Failed, e))?;
    match args.output {
        OutputFormat::Json => report::stdout_json(&serde_json::json!({
            "environment": place.environment,
            "lease": place.lease,
            "namespace": place.namespace,
            "held": info.as_ref().is_some_and(|i| !i.expired),
            "holder": info.as_ref().map(|i| &i.holder),
            "reason": info.as_ref().and_then(|i| i.reason.as_ref()),
            "pipeline_url": info.as_ref().and_then(|i| i.pipeline_url.as_ref()),
            "since": info.as_ref().and_then(|i| i.since.as_ref()),
            "expires_in_seconds": info.as_ref().and_then(|i| i.expires_in).map(|d| d.as_secs()),
            "expired": info.as_ref().is_some_and(|i| i.expired),
        })),
        OutputFormat::Text => report::stdout_line(&match &info {
            Some(info) => format!("{}: {}", place.environment, describe(info)),
            None => format!("{}: free", place.environment),
        }),
    }
    Ok(Outcome::Done)
}
