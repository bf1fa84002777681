//! The read-only commands: `tagship plan`, `tagship status`, `tagship history`. They change
//! nothing in any cluster and take no lock.

use std::fmt::Write as _;

use clap::Args;

use super::common::ConfigFile;
use serde_json::{Value, json};

use super::{CommandError, OutputFormat, common};
use crate::config::Config;
use crate::deploy::{KubePorts, PluginPorts, RunOptions, holder, plan};
use crate::exit::Outcome;
use crate::lifecycle::ports::{
    CheckOutcome, CheckResult, JobPreview, Migration, Migrations as _, StageLive,
};
use crate::lifecycle::{
    Action, CommandLine, Plan, StagePlan, StagePreview, check_per_cluster, context_for, preview,
};
use crate::terminal;
use crate::version::Version;

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
    for ((stage, preview), json) in plan.stages.iter().zip(&previews).zip(&mut stages) {
        if matches!(preview.action, Action::Deploy { .. }) {
            json["migrations"] = migrations_json(&plan, stage, &cluster).await;
        }
    }
    match args.common.output {
        OutputFormat::Json => terminal::stdout_json(&json!({
            "component": config.component.name,
            "version": target.to_string(),
            "stages": stages,
        })),
        OutputFormat::Text => {
            let mut text = format!(
                "plan: {} {target} (nothing changes until `tagship deploy`)",
                config.component.name
            );
            for (stage, preview) in stages.iter().zip(&previews) {
                let _ = write!(text, "\n{}", stage_text(stage, Some(&target)));
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
    let mut stages = describe(&config, &plan, &cluster, plugins.as_ref(), &previews).await;
    for stage in &mut stages {
        // The action is about a target version; status has none.
        if let Some(stage) = stage.as_object_mut() {
            stage.remove("action");
        }
    }
    match args.common.output {
        OutputFormat::Json => terminal::stdout_json(&json!({
            "component": config.component.name,
            "stages": stages,
        })),
        OutputFormat::Text => {
            let text: Vec<String> = stages.iter().map(|s| stage_text(s, None)).collect();
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
            let lines: Vec<String> = entries.iter().map(history_line).collect();
            terminal::stdout_line(&lines.join("\n"));
        }
    }
    Ok(Outcome::Done)
}

fn history_line(entry: &Value) -> String {
    let field = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("");
    let mut line = format!(
        "{}  {:<12} {}",
        field("at"),
        field("action"),
        field("version")
    );
    if !field("previous").is_empty() {
        let _ = write!(line, " (from {})", field("previous"));
    }
    let _ = write!(line, "  by {}", field("by"));
    if !field("pipeline_url").is_empty() {
        let _ = write!(line, "  {}", field("pipeline_url"));
    }
    if !field("reason").is_empty() {
        let _ = write!(line, "\n    reason: {}", field("reason"));
    }
    line
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

/// One JSON object per stage: live workloads, action, lock, watermark, health, last change.
async fn describe(
    config: &Config,
    plan: &Plan,
    cluster: &KubePorts<'_>,
    plugins: Option<&PluginPorts<'_>>,
    previews: &[StagePreview],
) -> Vec<Value> {
    let mut out = Vec::new();
    for (stage, preview) in plan.stages.iter().zip(previews) {
        let lock = match cluster.lock_status(&stage.environment).await {
            Ok(None) => json!({"held": false}),
            Ok(Some(info)) => json!({
                "held": !info.expired,
                "holder": info.holder.who,
                "reason": info.holder.reason,
                "pipeline_url": info.holder.pipeline_url,
                "since": info.holder.since,
                "expires_in_seconds": info.expires_in.map(|d| d.as_secs()),
            }),
            Err(e) => json!({"error": e.to_string()}),
        };
        let watermark = match cluster.watermark(&stage.environment).await {
            Ok(mark) => json!(mark.map(|m| m.to_string())),
            Err(e) => json!({"error": e.to_string()}),
        };
        let last = cluster
            .history(&stage.name)
            .await
            .ok()
            .and_then(|mut h| h.pop());
        let (live, health) = match &preview.live {
            Ok(live) => {
                let health = match plugins {
                    Some(plugins) => health_now(plugins, plan, stage, live).await,
                    None => Vec::new(),
                };
                (workloads_json(live), health)
            }
            Err(e) => (json!({"error": e.to_string()}), Vec::new()),
        };
        let gate = match config.stage(&stage.name).map(|s| s.gate) {
            Some(crate::config::Gate::Manual) => "manual",
            _ => "auto",
        };
        out.push(json!({
            "stage": stage.name,
            "environment": stage.environment,
            "gate": gate,
            "live": live,
            "action": action_json(&preview.action),
            "lock": lock,
            "post_migrated_version": watermark,
            "health": health.iter().map(check_json).collect::<Vec<_>>(),
            "last": last,
        }));
    }
    out
}

/// The migration Jobs a deploy of `plan.target` would run in `stage` (built from the live pod
/// template; nothing runs), as JSON.
async fn migrations_json(plan: &Plan, stage: &StagePlan, cluster: &KubePorts<'_>) -> Value {
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
                Ok(Some(job)) => json!({"kind": name, "job": job_json(&job)}),
                Ok(None) => continue,
                Err(e) => json!({"kind": name, "error": e.to_string()}),
            },
        );
    }
    Value::Array(jobs)
}

/// A migration Job as JSON.
pub(super) fn job_json(job: &JobPreview) -> Value {
    json!({
        "cluster": job.cluster,
        "namespace": job.namespace,
        "name": job.name,
        "from": job.from,
        "image": job.image,
        "command": job.command,
        "init_containers": job.init_containers,
        "env": job.env,
        "volumes": job.volumes,
        "service_account": job.service_account,
    })
}

/// A migration Job as indented lines.
pub(super) fn job_text(job: &JobPreview, indent: &str) -> String {
    let mut text = format!(
        "Job `{}` in namespace `{}` of cluster `{}`, in the pod of `{}`:\n{indent}  image {}\n{indent}  command {}",
        job.name,
        job.namespace,
        job.cluster,
        job.from,
        job.image,
        job.command.join(" ")
    );
    let mut list = |what: &str, items: &[String]| {
        if !items.is_empty() {
            let _ = write!(text, "\n{indent}  {what} {}", items.join("; "));
        }
    };
    list("init containers", &job.init_containers);
    list("env", &job.env);
    list("volumes", &job.volumes);
    if let Some(account) = &job.service_account {
        let _ = write!(text, "\n{indent}  service account {account}");
    }
    text
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

fn workloads_json(live: &StageLive) -> Value {
    Value::Array(
        live.workloads
            .iter()
            .map(|w| {
                json!({
                    "cluster": w.cluster,
                    "namespace": w.namespace,
                    "workload": w.name,
                    "image": w.image,
                    "version": w.version.as_ref().map(ToString::to_string),
                    "previous_version": w.previous.as_ref().map(ToString::to_string),
                    "rolled_out": w.complete,
                    "paused": w.paused,
                    "drift": w.drift,
                })
            })
            .collect(),
    )
}

fn check_json(result: &CheckResult) -> Value {
    let (status, reason) = match &result.outcome {
        CheckOutcome::Pass => ("pass", None),
        CheckOutcome::Fail(why) => ("fail", Some(why)),
        CheckOutcome::Unknown(why) => ("unknown", Some(why)),
        CheckOutcome::Errored(why) => ("error", Some(why)),
    };
    json!({"check": result.check, "cluster": result.cluster, "status": status, "reason": reason})
}

fn action_json(action: &Action) -> Value {
    let mut value = json!({"action": action.word()});
    match action {
        Action::Deploy { previous, .. } => {
            value["rollback_to"] = json!(previous.as_ref().map(ToString::to_string));
        }
        Action::AwaitApproval { command } => value["command"] = json!(command),
        Action::RefuseDowngrade { live } => value["live"] = json!(live.to_string()),
        Action::NotReached { reason } | Action::RefusePaused { reason } => {
            value["reason"] = json!(reason);
        }
        Action::RefuseUnknown { unreadable } => value["reason"] = json!(unreadable),
        Action::Skip | Action::Unreadable => {}
    }
    value
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

/// The migration Jobs of a stage's JSON as indented lines (one `\n    …` block each).
fn migrations_text(migrations: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut text = String::new();
    if let Value::Array(jobs) = migrations {
        for job in jobs {
            let kind = s(&job["kind"]);
            match job.get("job") {
                Some(j) => {
                    let strings = |v: &Value| -> Vec<String> {
                        v.as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    let preview = JobPreview {
                        cluster: s(&j["cluster"]),
                        namespace: s(&j["namespace"]),
                        name: s(&j["name"]),
                        from: s(&j["from"]),
                        image: s(&j["image"]),
                        command: strings(&j["command"]),
                        init_containers: strings(&j["init_containers"]),
                        env: strings(&j["env"]),
                        volumes: strings(&j["volumes"]),
                        service_account: j["service_account"].as_str().map(str::to_owned),
                    };
                    let _ = write!(
                        text,
                        "\n    {kind} migrations: {}",
                        job_text(&preview, "    ")
                    );
                }
                None => {
                    let _ = write!(
                        text,
                        "\n    {kind} migrations: cannot build the Job: {}",
                        s(&job["error"])
                    );
                }
            }
        }
    }
    text
}

/// A stage as text: header, workloads, lock, watermark, health, last change.
fn stage_text(stage: &Value, target: Option<&Version>) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut text = format!(
        "{} (environment {}, {} gate)",
        s(&stage["stage"]),
        s(&stage["environment"]),
        s(&stage["gate"])
    );
    match &stage["live"] {
        Value::Array(workloads) => {
            for w in workloads {
                let version = w["version"].as_str().unwrap_or("(not a tagship image)");
                let _ = write!(
                    text,
                    "\n    {} {}: {version}",
                    s(&w["cluster"]),
                    s(&w["workload"])
                );
                if let Some(target) = target {
                    let _ = write!(text, " → {target}");
                }
                if w["rolled_out"] != Value::Bool(true) {
                    text.push_str(" (rollout not complete)");
                }
                if w["paused"] == Value::Bool(true) {
                    text.push_str(" (paused)");
                }
                if let Some(drift) = w["drift"].as_str() {
                    let _ = write!(text, "\n      drift: {drift}");
                }
            }
        }
        other => {
            let _ = write!(text, "\n    cannot read: {}", s(&other["error"]));
        }
    }
    let lock = &stage["lock"];
    let lock_text = if lock["held"] == Value::Bool(true) {
        let mut t = format!("held by `{}`", s(&lock["holder"]));
        if let Some(since) = lock["since"].as_str() {
            let _ = write!(t, " since {since}");
        }
        if let Some(reason) = lock["reason"].as_str() {
            let _ = write!(t, " ({reason})");
        }
        t
    } else if lock.get("error").is_some() {
        format!("cannot read: {}", s(&lock["error"]))
    } else {
        "free".into()
    };
    let _ = write!(text, "\n    lock: {lock_text}");
    if let Some(mark) = stage["post_migrated_version"].as_str() {
        let _ = write!(text, "\n    post-deployment migrations at: {mark}");
    }
    if let Value::Array(checks) = &stage["health"] {
        for c in checks {
            let on = c["cluster"]
                .as_str()
                .map(|c| format!(" in {c}"))
                .unwrap_or_default();
            let _ = write!(
                text,
                "\n    health: {}{on} {}",
                s(&c["check"]),
                s(&c["status"])
            );
            if let Some(reason) = c["reason"].as_str() {
                let _ = write!(text, ": {reason}");
            }
        }
    }
    text.push_str(&migrations_text(&stage["migrations"]));
    if stage["last"].is_object() {
        let last = history_line(&stage["last"]).replace('\n', "\n    ");
        let _ = write!(text, "\n    last: {last}");
    }
    text
}
