//! `tagship deploy`: take a version through the stages.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args;

use super::CommandError;
use crate::config;
use crate::deploy::{KubePorts, LineReporter, PluginPorts, RunOptions, holder, plan};
use crate::exit::Outcome;
use crate::lifecycle::{DeployOutcome, deploy};
use crate::plugins::PluginHost;
use crate::report;
use crate::version::Version;

/// `deploy` arguments.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The version to deploy, e.g. `v3.1.0`. Default: `TAGSHIP_VERSION`, else `CI_COMMIT_TAG`.
    #[arg(long, env = "TAGSHIP_VERSION")]
    pub version: Option<String>,

    /// The configuration file.
    #[arg(long, default_value = "tagship.toml", env = "TAGSHIP_CONFIG")]
    pub config: PathBuf,

    /// Enter this manual stage (repeatable). Without it the run stops before the stage,
    /// "awaiting approval", exit 0, and prints the command to continue.
    #[arg(long, value_name = "STAGE")]
    pub approve: Vec<String>,

    /// Stop after this stage.
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,

    /// Allow deploying a version older than the one live (`tagship rollback` is the usual way).
    #[arg(long)]
    pub allow_downgrade: bool,
}

/// Runs `deploy`.
pub async fn run(args: DeployArgs) -> Result<Outcome, CommandError> {
    let text = args
        .version
        .clone()
        .or_else(|| std::env::var("CI_COMMIT_TAG").ok())
        .ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!(
                "no version: pass --version v3.1.0 (or set TAGSHIP_VERSION or CI_COMMIT_TAG)"
            ))
        })?;
    let target: Version = text
        .parse()
        .map_err(|e| CommandError::usage(anyhow::anyhow!("--version: {e}")))?;
    let config = config::load(&args.config).map_err(CommandError::usage)?;
    for stage in args.approve.iter().chain(&args.until) {
        if config.stage(stage).is_none() {
            let known: Vec<&str> = config.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(CommandError::usage(anyhow::anyhow!(
                "there is no stage `{stage}` in {}; the stages are: {}",
                args.config.display(),
                known.join(", ")
            )));
        }
    }
    let deploy_id = format!(
        "{}-{}-{}",
        config.component.name,
        target,
        std::env::var("CI_PIPELINE_ID").unwrap_or_else(|_| std::process::id().to_string())
    );
    let options = RunOptions {
        approve: args.approve.iter().cloned().collect::<BTreeSet<_>>(),
        until: args.until.clone(),
        allow_downgrade: args.allow_downgrade,
        deploy_id: deploy_id.clone(),
        pipeline_url: std::env::var("CI_PIPELINE_URL").ok(),
    };
    let plan = plan(&config, target.clone(), &options);
    let host = PluginHost::new().map_err(|e| CommandError::new(e.outcome(), e))?;
    let plugins = PluginPorts::new(&config, host, deploy_id);
    plugins
        .preload()
        .map_err(|e| CommandError::new(e.outcome(), e))?;
    let cluster = KubePorts::new(
        &config,
        holder(format!("deploying {} {target}", config.component.name)),
    );
    let outcome = Box::pin(deploy(&plan, &cluster, &plugins, &plugins, &LineReporter)).await;
    report::stderr_line(&summary(&outcome));
    Ok(outcome.outcome())
}

fn summary(outcome: &DeployOutcome) -> String {
    match outcome {
        DeployOutcome::Done { deployed, skipped } => format!(
            "done: deployed {}; already there: {}",
            if deployed.is_empty() {
                "nothing".to_owned()
            } else {
                deployed.join(", ")
            },
            if skipped.is_empty() {
                "none".to_owned()
            } else {
                skipped.join(", ")
            }
        ),
        DeployOutcome::AwaitingApproval { stage } => format!("stopped: `{stage}` awaits approval"),
        DeployOutcome::Blocked { stage, reason } => {
            format!("blocked before changing `{stage}`: {reason}")
        }
        DeployOutcome::LockTimeout {
            environment,
            holder,
        } => {
            format!("gave up waiting for the lock of `{environment}`, held by {holder}")
        }
        DeployOutcome::Failed {
            stage,
            reason,
            rolled_back_to,
        } => match rolled_back_to {
            Some(v) => format!("failed in `{stage}`: {reason}; rolled back, {v} serves again"),
            None => format!("failed in `{stage}`: {reason}"),
        },
        DeployOutcome::RollbackFailed { stage, reason } => {
            format!("HUMAN NEEDED in `{stage}`: {reason}")
        }
    }
}
