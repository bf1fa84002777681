//! The read-only commands: `tagship plan`, `tagship status`, `tagship history`. They change
//! nothing in any cluster and take no lock.

use std::fmt::Write as _;

use clap::Args;

use super::common::ConfigFile;
use serde_json::json;

use super::view::{self, LockView, MigrationView, StageView};
use super::{CommandError, OutputFormat, common};
use crate::config::Config;
use crate::exit::Outcome;
use crate::lifecycle::ports::{CheckResult, Migration, Migrations as _, StageLive};
use crate::lifecycle::{
    Action, CommandLine, Plan, StagePlan, StagePreview, check_per_cluster, context_for, preview,
};
use crate::terminal;
use crate::version::Version;
use crate::wiring::{KubePorts, PluginPorts, RunOptions, holder, plan};

/// Where the configuration is, and how to print.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub config: ConfigFile,

    /// How to print.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The version a deploy would take through the stages. Default: `TAGSHIP_VERSION`, else
    /// `CI_COMMIT_TAG`.
    #[arg(long, env = "TAGSHIP_VERSION")]
    pub version: Option<String>,

    /// Plan as if these manual stages were approved (repeatable). A stage without
    /// `gate = "manual"` is refused (exit 2), as `deploy` refuses it.
    #[arg(long, value_name = "STAGE")]
    pub approve: Vec<String>,

    /// Plan a run that stops after this stage.
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,

    /// Plan as if `--allow-downgrade` were given.
    #[arg(long)]
    pub allow_downgrade: bool,

    /// Do not run the stages' health checks.
    #[arg(long)]
    pub no_health: bool,

    /// Configuration and output.
    #[command(flatten)]
    pub common: Common,
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Do not run the stages' health checks.
    #[arg(long)]
    pub no_health: bool,

    /// Configuration and output.
    #[command(flatten)]
    pub common: Common,
}

/// `history` arguments.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The stage.
    #[arg(long)]
    pub stage: String,

    /// Only the newest N entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Configuration and output.
    #[command(flatten)]
    pub common: Common,
}

/// Runs `plan`.
pub async fn run_plan(args: PlanArgs) -> Result<Outcome, CommandError> {
    let given = common::version(args.version.as_deref())?;
    let config = args.common.config.load()?;
    common::check_tag(Some(&config.component.tag), &given)?;
    let target = given.version;
    common::check_credentials(&config)?;
    for stage in args.approve.iter().chain(&args.until) {
        common::require_stage(&config, stage)?;
    }
    for stage in &args.approve {
        common::require_gated(&config, stage)?;
    }
    let options = RunOptions {
        approve: args.approve.iter().cloned().collect(),
        until: args.until.clone(),
        allow_downgrade: args.allow_downgrade,
        force: false,
        deploy_id: "plan".into(),
        pipeline_url: None,
        app_version: None,
        command: deploy_command(&args, &target),
    };
    let plan = plan(&config, target.clone(), &options);
    let cluster = KubePorts::new(&config, holder("plan".into()));
    let previews = preview(&plan, &cluster).await;
    let plugins = health_plugins(&config, args.no_health)?;
    let mut stages = describe(&config, &plan, &cluster, plugins.as_ref(), &previews).await;
    for ((stage, preview), view) in plan.stages.iter().zip(&previews).zip(&mut stages) {
        view.action = Some(preview.action.clone());
        if matches!(preview.action, Action::Deploy { .. }) {
            view.migrations = Some(migrations(&plan, stage, &cluster).await);
        }
    }
    match args.common.output {
        OutputFormat::Json => terminal::stdout_json(&json!({
            "component": config.component.name,
            "version": target.to_string(),
            "stages": stages.iter().map(StageView::json).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let mut text = format!(
                "plan: {} {target} (nothing changes until `tagship deploy`)",
                config.component.name
            );
            for (stage, preview) in stages.iter().zip(&previews) {
                let _ = write!(text, "\n{}", stage.text(Some(&target)));
                let _ = write!(text, "\n    action: {}", action_text(&preview.action));
            }
            terminal::stdout_line(&text);
        }
    }
    Ok(unreadable_outcome(&previews))
}

/// The `tagship deploy` command the plan describes, every flag spelled out, for the follow-up
/// commands it prints (approving a gate).
fn deploy_command(args: &PlanArgs, target: &Version) -> CommandLine {
    let mut line = CommandLine::new([
        "deploy".to_owned(),
        "--config".to_owned(),
        args.common.config.path.display().to_string(),
        "--version".to_owned(),
        target.to_string(),
    ]);
    if let Some(stage) = &args.until {
        line = line.with(&["--until", stage]);
    }
    if args.allow_downgrade {
        line = line.with(&["--allow-downgrade"]);
    }
    for stage in &args.approve {
        line = line.with(&["--approve", stage]);
    }
    line
}

/// Runs `status`.
pub async fn run_status(args: StatusArgs) -> Result<Outcome, CommandError> {
    let config = args.common.config.load()?;
    common::check_credentials(&config)?;
    // The action is irrelevant for status; any version gives the same reads.
    let any: Version = "v0.0.0"
        .parse()
        .map_err(|e| CommandError::usage(anyhow::anyhow!("{e}")))?;
    let plan = plan(&config, any, &RunOptions::default());
    let cluster = KubePorts::new(&config, holder("status".into()));
    let previews = preview(&plan, &cluster).await;
    let plugins = health_plugins(&config, args.no_health)?;
    // The action is about a target version; status has none.
    let stages = describe(&config, &plan, &cluster, plugins.as_ref(), &previews).await;
    match args.common.output {
        OutputFormat::Json => terminal::stdout_json(&json!({
            "component": config.component.name,
            "stages": stages.iter().map(StageView::json).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let text: Vec<String> = stages.iter().map(|s| s.text(None)).collect();
            terminal::stdout_line(&text.join("\n"));
        }
    }
    Ok(unreadable_outcome(&previews))
}

/// Runs `history`.
pub async fn run_history(args: HistoryArgs) -> Result<Outcome, CommandError> {
    let config = args.common.config.load()?;
    common::check_credentials(&config)?;
    common::require_stage(&config, &args.stage)?;
    let cluster = KubePorts::new(&config, holder("history".into()));
    let mut entries = cluster
        .history(&args.stage)
        .await
        .map_err(|e| CommandError::new(Outcome::Failed, e))?;
    if let Some(limit) = args.limit {
        entries.drain(..entries.len().saturating_sub(limit));
    }
    match args.common.output {
        OutputFormat::Json => terminal::stdout_json(&json!({
            "stage": args.stage,
            "entries": entries,
        })),
        OutputFormat::Text if entries.is_empty() => {
            terminal::stdout_line(&format!("{}: no history yet", args.stage));
        }
        OutputFormat::Text => {
            let lines: Vec<String> = entries.iter().map(view::history_line).collect();
            terminal::stdout_line(&lines.join("\n"));
        }
    }
    Ok(Outcome::Done)
}

/// Exit 1 when a stage could not be read, so a script does not take silence for health.
fn unreadable_outcome(previews: &[StagePreview]) -> Outcome {
    if previews.iter().any(|p| p.live.is_err()) {
        Outcome::Failed
    } else {
        Outcome::Done
    }
}

/// Plugin ports for the health checks, unless `--no-health`. A plugin that cannot load is a
/// usage error, as it would be for a deploy.
fn health_plugins(config: &Config, skip: bool) -> Result<Option<PluginPorts<'_>>, CommandError> {
    if skip {
        return Ok(None);
    }
    let host = crate::plugins::PluginHost::new();
    let plugins = PluginPorts::new(config, host);
    plugins
        .preload()
        .map_err(|e| CommandError::new(e.outcome(), e))?;
    Ok(Some(plugins))
}

/// One view per stage: live workloads, lock, watermark, health, last change.
async fn describe(
    config: &Config,
    plan: &Plan,
    cluster: &KubePorts<'_>,
    plugins: Option<&PluginPorts<'_>>,
    previews: &[StagePreview],
) -> Vec<StageView> {
    let mut out = Vec::new();
    for (stage, preview) in plan.stages.iter().zip(previews) {
        let lock = match cluster.lock_status(&stage.environment).await {
            Ok(None) => LockView::Free,
            Ok(Some(info)) => LockView::Read(info),
            Err(e) => LockView::Unreadable(e.to_string()),
        };
        let watermark = cluster
            .watermark(&stage.environment)
            .await
            .map_err(|e| e.to_string());
        let last = cluster
            .history(&stage.name)
            .await
            .ok()
            .and_then(|mut h| h.pop());
        let health = match (&preview.live, plugins) {
            (Ok(live), Some(plugins)) => health_now(plugins, plan, stage, live).await,
            _ => Vec::new(),
        };
        let gate = match config.stage(&stage.name).map(|s| s.gate) {
            Some(crate::config::Gate::Manual) => "manual",
            _ => "auto",
        };
        out.push(StageView {
            stage: stage.name.clone(),
            environment: stage.environment.clone(),
            gate,
            live: preview.live.clone().map_err(|e| e.to_string()),
            action: None,
            lock,
            watermark,
            health,
            last,
            migrations: None,
        });
    }
    out
}

/// The migration Jobs a deploy of `plan.target` would run in `stage` (built from the live pod
/// template; nothing runs).
async fn migrations(plan: &Plan, stage: &StagePlan, cluster: &KubePorts<'_>) -> Vec<MigrationView> {
    let mut jobs = Vec::new();
    let due = [
        (
            Migration::Pre,
            stage.first_of_environment && plan.pre_migrations,
        ),
        (
            Migration::Post,
            stage.post_migrations_after && plan.post_migrations,
        ),
    ];
    for (kind, due) in due {
        if !due {
            continue;
        }
        let name = match kind {
            Migration::Pre => "pre-deployment",
            Migration::Post => "post-deployment",
        };
        jobs.push(
            match cluster
                .migration_job(stage, kind, &plan.target, false)
                .await
            {
                Ok(Some(job)) => MigrationView {
                    kind: name,
                    job: Ok(job),
                },
                Ok(None) => continue,
                Err(e) => MigrationView {
                    kind: name,
                    job: Err(e.to_string()),
                },
            },
        );
    }
    jobs
}

/// Runs the stage's bake checks (else its pre-checks) once against what is live.
async fn health_now(
    plugins: &PluginPorts<'_>,
    plan: &Plan,
    stage: &StagePlan,
    live: &StageLive,
) -> Vec<CheckResult> {
    let checks = match &stage.bake {
        Some(bake) if !bake.checks.is_empty() => &bake.checks,
        _ => &stage.pre_checks,
    };
    if checks.is_empty() {
        return Vec::new();
    }
    let mut ctx = context_for(plan, Some(stage), None, live);
    if let Some(newest) = live
        .workloads
        .iter()
        .filter_map(|w| w.version.clone())
        .max()
    {
        ctx.version = newest.to_string();
    }
    check_per_cluster(plugins, stage, checks, &ctx).await
}

fn action_text(action: &Action) -> String {
    match action {
        Action::Skip => "nothing to do, already serving it".into(),
        Action::Deploy {
            previous,
            resume: false,
        } => match previous {
            Some(p) => format!("deploy (a failure rolls back to {p})"),
            None => "deploy (nothing to roll back to)".into(),
        },
        Action::Deploy { resume: true, .. } => {
            "resume: already applied, wait for its rollout".into()
        }
        Action::AwaitApproval { command } => format!("stop, awaiting approval: {command}"),
        Action::RefuseDowngrade { live } => {
            format!("refused: {live} is live and newer (needs --allow-downgrade)")
        }
        Action::RefuseUnknown { unreadable } => {
            format!(
                "refused: {unreadable}, so it may run something newer (needs --allow-downgrade)"
            )
        }
        Action::NotReached { reason } => format!("not reached: {reason}"),
        Action::RefusePaused { reason } => format!("refused: {reason}"),
        Action::Unreadable => "stop: the stage cannot be read".into(),
    }
}
