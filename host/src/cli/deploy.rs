//! `tagship deploy`: take a version through the stages.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args;

use super::common::ConfigFile;
use super::signal::{CLEANUP_WITHIN, shutdown_signal};
use crate::lifecycle::notify::Routed;

use super::{CommandError, common};
use crate::context::EventKind;
use crate::exit::Outcome;
use crate::journal::{Ending, Finished, Journal, RecordingNotify, RunReport, write_atomically};
use crate::lifecycle::ports::{
    Locks as _, Migration, Migrations as _, Reporter as _, StageEnd, StageLive, Workloads as _,
};
use crate::lifecycle::{
    Action, CommandLine, DeployOutcome, Plan, StagePlan, context_for, deploy, preview,
};
use crate::plugins::PluginHost;
use crate::progress;
use crate::terminal;
use crate::version::Version;
use crate::wiring::{KubePorts, PluginPorts, RunOptions, holder, plan};

/// `deploy` arguments.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The version to deploy, e.g. `v3.1.0`. Default: `TAGSHIP_VERSION`, else `CI_COMMIT_TAG`.
    #[arg(long, env = "TAGSHIP_VERSION")]
    pub version: Option<String>,

    #[command(flatten)]
    pub config: ConfigFile,

    /// Enter this manual stage (repeatable). Without it the run stops before the stage,
    /// "awaiting approval", exit 0, and prints the command to continue. A stage without
    /// `gate = "manual"` is refused (exit 2): there is nothing to approve.
    #[arg(long, value_name = "STAGE")]
    pub approve: Vec<String>,

    /// Stop after this stage.
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,

    /// The application's version, given to compat pre-checks (e.g. the Rails app's version
    /// live in the environments). Without it a compat check that needs it cannot decide, and
    /// blocks (exit 3).
    #[arg(long, env = "TAGSHIP_APP_VERSION", value_name = "VERSION")]
    pub app_version: Option<String>,

    /// Allow deploying a version older than the one live (`tagship rollback` is the usual way),
    /// or over a workload whose version cannot be read from its image tag.
    #[arg(long)]
    pub allow_downgrade: bool,

    /// With `--allow-downgrade`, deploy even below the post-deployment migrations that ran in
    /// an environment (refused otherwise, exit 6, as `tagship rollback` refuses it): only when
    /// you know the older version works with the newer schema.
    #[arg(long, requires = "allow_downgrade")]
    pub force: bool,

    /// Write a JSON report of the run (every step, phase, check result and event with its
    /// time, and the outcome) to this file.
    #[arg(long, value_name = "PATH")]
    pub json_report: Option<PathBuf>,

    /// Write a Markdown summary (stages table, a Mermaid timeline GitLab renders, the checks
    /// that did not pass) to this file.
    #[arg(long, value_name = "PATH")]
    pub markdown_report: Option<PathBuf>,

    /// Write `TAGSHIP_*` variables (outcome, exit code, stage reached, versions) to this file,
    /// for `artifacts:reports:dotenv` and downstream jobs.
    #[arg(long, value_name = "PATH")]
    pub dotenv: Option<PathBuf>,

    /// Change nothing: say what each stage would do and have the API server validate every
    /// apply (server-side dry run). Takes no lock; runs no check or migration. Exit 3 when the
    /// real run would stop before its first change, else 0.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `deploy`.
pub async fn run(args: DeployArgs) -> Result<Outcome, CommandError> {
    let given = common::version(args.version.as_deref())?;
    let config = args.config.load()?;
    common::check_tag(Some(&config.component.tag), &given)?;
    let target = given.version;
    common::check_credentials(&config)?;
    for stage in args.approve.iter().chain(&args.until) {
        common::require_stage(&config, stage)?;
    }
    for stage in &args.approve {
        common::require_gated(&config, stage)?;
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
        force: args.force,
        deploy_id: deploy_id.clone(),
        pipeline_url: std::env::var("CI_PIPELINE_URL").ok(),
        app_version: args
            .app_version
            .as_deref()
            .map(|v| common::app_version(v, "--app-version"))
            .transpose()?,
        command: command_line(&args, &target),
    };
    let plan = plan(&config, target.clone(), &options);
    let host = PluginHost::new();
    let plugins = PluginPorts::new(&config, host);
    plugins
        .preload()
        .map_err(|e| CommandError::new(e.outcome(), e))?;
    let lock_holder = holder(format!("deploying {} {target}", config.component.name));
    let journal = Journal::new(progress::display());
    if args.dry_run {
        let cluster = KubePorts::new(&config, lock_holder).with_reporter(&journal);
        let outcome = dry_run(&plan, &cluster, &journal).await;
        let summary = match outcome {
            Outcome::Done => "dry run: nothing was changed; the server accepted every apply",
            _ => "dry run: nothing was changed; the real run would stop before its first change",
        };
        let ending = Ending {
            outcome: "dry-run",
            exit_code: outcome.code(),
            summary: summary.to_owned(),
            stage_reached: journal.last_stage(),
            deployed: Vec::new(),
            skipped: Vec::new(),
            rolled_back_to: None,
        };
        let finished = journal.finish();
        terminal::stderr_line(&ending.summary);
        write_reports(&args, &plan, &finished, &ending);
        return Ok(outcome);
    }
    let (ending, outcome) = {
        let cluster = KubePorts::new(&config, lock_holder).with_reporter(&journal);
        let routed = Routed::new(&plan, &plugins);
        let notify = RecordingNotify {
            inner: &routed,
            journal: &journal,
        };
        let run = Box::pin(deploy(&plan, &cluster, &plugins, &notify, &journal));
        tokio::select! {
            outcome = run => (Ending::of(&outcome, summary(&outcome)), outcome.outcome()),
            signal = shutdown_signal() => {
                let ending = interrupted(signal, &plan, &cluster, &notify).await;
                let ending = Ending {
                    stage_reached: journal.last_stage(),
                    ..ending
                };
                (ending, Outcome::Failed)
            }
        }
    };
    let finished = journal.finish();
    terminal::stderr_line(&ending.summary);
    write_reports(&args, &plan, &finished, &ending);
    Ok(outcome)
}

/// The command line of this run, every flag spelled out (the configuration and version too,
/// also when they came from the environment), for the follow-up commands it prints.
fn command_line(args: &DeployArgs, target: &Version) -> CommandLine {
    let mut words = vec![
        "deploy".to_owned(),
        "--config".to_owned(),
        args.config.path.display().to_string(),
        "--version".to_owned(),
        target.to_string(),
    ];
    let mut flag = |name: &str, value: Option<String>| {
        words.push(name.to_owned());
        words.extend(value);
    };
    if let Some(stage) = &args.until {
        flag("--until", Some(stage.clone()));
    }
    if args.allow_downgrade {
        flag("--allow-downgrade", None);
    }
    if let Some(app) = &args.app_version {
        flag("--app-version", Some(app.clone()));
    }
    let reports = [
        ("--json-report", &args.json_report),
        ("--markdown-report", &args.markdown_report),
        ("--dotenv", &args.dotenv),
    ];
    for (name, path) in reports {
        if let Some(path) = path {
            flag(name, Some(path.display().to_string()));
        }
    }
    if args.dry_run {
        flag("--dry-run", None);
    }
    for stage in &args.approve {
        flag("--approve", Some(stage.clone()));
    }
    CommandLine::new(words)
}

/// Renders one report file from the run's record.
type Render = fn(&RunReport<'_>) -> String;

/// Writes the reports the flags ask for. A report that cannot be written is said loudly but
/// does not change the deploy's outcome (the cluster is what it is).
fn write_reports(args: &DeployArgs, plan: &Plan, finished: &Finished, ending: &Ending) {
    let report = RunReport {
        plan,
        finished,
        ending,
    };
    let outputs: [(&Option<PathBuf>, &str, Render); 3] = [
        (&args.json_report, "JSON report", |r| {
            crate::terminal::json(&r.json())
        }),
        (&args.markdown_report, "Markdown summary", |r| r.markdown()),
        (&args.dotenv, "dotenv file", |r| r.dotenv()),
    ];
    for (path, what, render) in outputs {
        let Some(path) = path else { continue };
        let text = render(&report);
        match write_atomically(path, &text) {
            Ok(()) => terminal::stderr_line(&format!("wrote the {what} to {}", path.display())),
            Err(e) => terminal::stderr_line(&format!(
                "error: could not write the {what} to {}: {e}",
                path.display()
            )),
        }
    }
}

/// `--dry-run`: says what each stage would do, per cluster, workload and container (the image
/// before → after), the annotations it would write and the migration Jobs it would run, and has
/// the API server validate each apply and each Job (`dryRun=All`). Takes no lock, runs no check
/// or migration, changes nothing. Exits as the real run would before its first change: 3 when
/// it would be refused or the server rejects an apply or a Job, 0 otherwise.
async fn dry_run(plan: &Plan, cluster: &KubePorts<'_>, reporter: &Journal) -> Outcome {
    let previews = preview(plan, cluster).await;
    let mut outcome = Outcome::Done;
    for (stage, p) in plan.stages.iter().zip(&previews) {
        let line = |text: &str| reporter.step(Some(&stage.name), &format!("dry run: {text}"));
        match &p.action {
            Action::Deploy { previous, resume } => {
                if !resume
                    && stage.first_of_environment
                    && plan.pre_migrations
                    && dry_run_migration(plan, stage, Migration::Pre, cluster, &line).await
                        != Outcome::Done
                {
                    outcome = Outcome::Blocked;
                }
                match cluster
                    .validate_apply(stage, &plan.target, previous.as_ref())
                    .await
                {
                    Ok(change) => {
                        let back = previous
                            .as_ref()
                            .map_or_else(|| "nothing".to_owned(), ToString::to_string);
                        if *resume {
                            line(&format!(
                                "{} is already applied; the run would wait for its rollout (a failure would roll back to {back})",
                                plan.target
                            ));
                        } else {
                            line(&format!(
                                "would apply {} (the server accepts it); a failure would roll back to {back}",
                                plan.target
                            ));
                        }
                        for c in &change.changes {
                            line(&format!(
                                "  {} {}/{}: {} → {}",
                                c.cluster, c.workload, c.container, c.before, c.after
                            ));
                        }
                        let annotations: Vec<String> = change
                            .annotations
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        line(&format!("  annotations: {}", annotations.join(", ")));
                    }
                    Err(e) => {
                        line(&format!("the server rejects the apply: {e}"));
                        outcome = Outcome::Blocked;
                    }
                }
                if stage.post_migrations_after
                    && plan.post_migrations
                    && dry_run_migration(plan, stage, Migration::Post, cluster, &line).await
                        != Outcome::Done
                {
                    outcome = Outcome::Blocked;
                }
            }
            Action::Skip => line(&format!("already serving {}, nothing to do", plan.target)),
            Action::AwaitApproval { command } => {
                line(&format!(
                    "the run would stop here awaiting approval: {command}"
                ));
            }
            Action::RefuseDowngrade { live } => {
                line(&format!(
                    "refused: {live} is live, newer than {} (needs --allow-downgrade)",
                    plan.target
                ));
                outcome = Outcome::Blocked;
            }
            Action::RefuseUnknown { unreadable } => {
                line(&format!(
                    "refused: {unreadable}, so it may run something newer than {} (needs --allow-downgrade)",
                    plan.target
                ));
                outcome = Outcome::Blocked;
            }
            Action::NotReached { reason } => line(&format!("not reached: {reason}")),
            Action::RefusePaused { reason } => {
                line(&format!("refused: {reason}"));
                outcome = Outcome::Blocked;
            }
            Action::Unreadable => {
                let why = p
                    .live
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                line(&format!("cannot read the stage: {why}"));
                outcome = Outcome::Blocked;
            }
        }
        reporter.stage_done(&stage.name, StageEnd::Stopped);
    }
    outcome
}

/// Says which migration Job `kind` the run would run in `stage`, validated by the API server.
async fn dry_run_migration(
    plan: &Plan,
    stage: &StagePlan,
    kind: Migration,
    cluster: &KubePorts<'_>,
    line: &impl Fn(&str),
) -> Outcome {
    let when = match kind {
        Migration::Pre => "before the apply",
        Migration::Post => "after the stage",
    };
    match cluster.migration_job(stage, kind, &plan.target, true).await {
        Ok(Some(job)) => {
            let text = format!(
                "would run {when} (the server accepts it): {}",
                super::view::job_text(&job, "")
            );
            for part in text.lines() {
                line(part);
            }
            Outcome::Done
        }
        Ok(None) => Outcome::Done,
        Err(e) => {
            line(&format!("the migration Job {when} cannot run: {e}"));
            Outcome::Blocked
        }
    }
}

/// The run was stopped by a signal: release every lock it may hold (only ours are released),
/// tell the notifiers, and say how to finish. Nothing is rolled back: a re-run of the same
/// command finishes or rolls back from what it finds.
///
/// # Guarantees
///
/// Returns within [`CLEANUP_WITHIN`] (or at a second signal), however the cluster or the
/// notifiers answer: the releases (all at once) and the notification run side by side, each
/// bounded by it.
async fn interrupted(
    signal: &str,
    plan: &Plan,
    cluster: &KubePorts<'_>,
    notify: &impl crate::lifecycle::ports::Notify,
) -> Ending {
    terminal::stderr_line(&format!(
        "{signal}: stopping; releasing the deploy lock (a second signal exits at once)"
    ));
    let environments: BTreeSet<&str> = plan.stages.iter().map(|s| s.environment.as_str()).collect();
    let release =
        futures::future::join_all(environments.into_iter().map(|environment| async move {
            match tokio::time::timeout(CLEANUP_WITHIN, cluster.unlock(environment)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => terminal::stderr_line(&format!(
                    "could not release the lock of `{environment}` (it expires on its own): {e}"
                )),
                Err(_) => terminal::stderr_line(&format!(
                    "could not release the lock of `{environment}` within {} s: the API server \
                     did not answer (it expires on its own)",
                    CLEANUP_WITHIN.as_secs()
                )),
            }
        }));
    let tell = async {
        let ctx = context_for(plan, None, None, &StageLive::default());
        let message = format!(
            "interrupted by {signal}; re-run the same command to finish: {}",
            plan.command
        );
        let sent = notify.send(None, EventKind::DeployFailed, &ctx, &message);
        if tokio::time::timeout(CLEANUP_WITHIN, sent).await.is_err() {
            terminal::stderr_line(&format!(
                "the notifiers were not told within {} s",
                CLEANUP_WITHIN.as_secs()
            ));
        }
    };
    tokio::select! {
        _ = async { futures::join!(release, tell) } => {}
        _ = shutdown_signal() => terminal::stderr_line("second signal: exiting without cleaning up"),
    }
    Ending {
        outcome: "interrupted",
        exit_code: Outcome::Failed.code(),
        summary: format!(
            "interrupted by {signal}: a stage may be part-way; re-run `{}` to finish it (or roll it back)",
            plan.command
        ),
        stage_reached: None,
        deployed: Vec::new(),
        skipped: Vec::new(),
        rolled_back_to: None,
    }
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
