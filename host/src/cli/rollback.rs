//! `tagship rollback --stage S [--to V] [--force]`: return a stage to an earlier version.

use clap::Args;

use super::common::ConfigFile;

use super::{CommandError, common};
use crate::exit::Outcome;
use crate::lifecycle::notify::Routed;
use crate::lifecycle::ports::Locks as _;
use crate::lifecycle::{CommandLine, DeployOutcome, RollbackRequest, rollback};
use crate::plugins::PluginHost;
use crate::terminal;
use crate::wiring::{KubePorts, PluginPorts, RunOptions, holder, plan};

/// `rollback` arguments.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The stage to roll back (every cluster of it).
    #[arg(long)]
    pub stage: String,

    /// The version to return to. Default: the version before the one live, as tagship
    /// recorded it when it applied (annotation `tagship.io/previous-version`).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,

    /// Roll back below the environment's post-deployment migrations. They changed the schema
    /// for the newer version; only use this when you know the older version works with it.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub config: ConfigFile,
}

/// This rollback's command line, every flag spelled out, for the follow-up commands it prints.
fn command_line(args: &RollbackArgs) -> CommandLine {
    let config = args.config.path.display().to_string();
    let mut line = CommandLine::new(["rollback", "--config", &config, "--stage", &args.stage]);
    if let Some(to) = &args.to {
        line = line.with(&["--to", to]);
    }
    if args.force {
        line = line.with(&["--force"]);
    }
    line
}

/// Runs `rollback`.
pub async fn run(args: RollbackArgs) -> Result<Outcome, CommandError> {
    let config = args.config.load()?;
    common::check_credentials(&config)?;
    common::require_stage(&config, &args.stage)?;
    let to = args
        .to
        .as_deref()
        .map(|v| common::deployable_version(v, "--to", &config))
        .transpose()?;
    let deploy_id = format!(
        "{}-rollback-{}-{}",
        config.component.name,
        args.stage,
        std::env::var("CI_PIPELINE_ID").unwrap_or_else(|_| std::process::id().to_string())
    );
    let options = RunOptions {
        deploy_id: deploy_id.clone(),
        pipeline_url: std::env::var("CI_PIPELINE_URL").ok(),
        command: command_line(&args),
        ..RunOptions::default()
    };
    // The plan's target is not used by a rollback; the stage says what is live.
    let placeholder = match &to {
        Some(v) => v.clone(),
        None => common::parse_version("v0.0.0", "placeholder")?,
    };
    let plan = plan(&config, placeholder, &options);
    let host = PluginHost::new();
    let plugins = PluginPorts::new(&config, host);
    plugins
        .preload()
        .map_err(|e| CommandError::new(e.outcome(), e))?;
    let display = crate::progress::display();
    let cluster = KubePorts::new(
        &config,
        holder(format!(
            "rolling back {} in {}",
            config.component.name, args.stage
        )),
    )
    .with_reporter(&*display);
    let request = RollbackRequest {
        stage: args.stage.clone(),
        to,
        force: args.force,
    };
    let notify = Routed::new(&plan, &plugins);
    let run = Box::pin(rollback(&plan, &request, &cluster, &notify, &display));
    let outcome = tokio::select! {
        outcome = run => outcome,
        signal = super::signal::shutdown_signal() => {
            // Give the lock back (only ours is released); the stage may be part-way.
            let environment = config
                .stage(&args.stage)
                .map(|s| s.environment.clone())
                .unwrap_or_default();
            let released =
                tokio::time::timeout(super::signal::CLEANUP_WITHIN, cluster.unlock(&environment))
                    .await;
            if !matches!(released, Ok(Ok(()))) {
                terminal::stderr_line(&format!(
                    "could not release the lock of `{environment}`; it expires on its own"
                ));
            }
            drop(cluster);
            drop(display);
            terminal::stderr_line(&format!(
                "interrupted by {signal}: `{}` may be part-way; run the same rollback again to finish it: `{}`",
                args.stage,
                command_line(&args)
            ));
            return Ok(Outcome::Failed);
        }
    };
    drop(cluster);
    drop(display);
    terminal::stderr_line(&match &outcome {
        DeployOutcome::Done { deployed, .. } if deployed.is_empty() => {
            format!(
                "done: `{}` already serves that version; nothing changed",
                args.stage
            )
        }
        DeployOutcome::Done { .. } => format!("done: `{}` rolled back", args.stage),
        DeployOutcome::RollbackFailed { reason, .. } => {
            format!("HUMAN NEEDED in `{}`: {reason}", args.stage)
        }
        DeployOutcome::Blocked { reason, .. } => {
            format!("not rolled back, nothing changed: {reason}")
        }
        DeployOutcome::LockTimeout {
            environment,
            holder,
        } => format!("gave up waiting for the lock of `{environment}`, held by {holder}"),
        other => format!("{other:?}"),
    });
    Ok(outcome.outcome())
}
