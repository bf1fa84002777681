//! `tagship rollback --stage S [--to V] [--force]`: return one stage to an earlier version on
//! demand, under the environment's lock, with the same watermark rule as an automatic rollback.

use crate::context::{DeployContext, EventKind};
use crate::version::Version;

use super::decide::{self, RollbackDecision};
use super::driver::{DeployOutcome, Run};
use super::plan::{CommandLine, Plan, StagePlan};
use super::ports::{Cluster, Notify, Reporter, StageLive};

/// What a rollback was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest {
    /// The stage (one of `plan.stages`).
    pub stage: String,
    /// The version to return to; default: the version before the one live.
    pub to: Option<Version>,
    /// Roll back below the post-deployment migration watermark anyway.
    pub force: bool,
}

/// Rolls one stage back. `plan.target` is not used: the version live is read from the stage.
///
/// Outcomes: `Done` (rolled back, or already serving the version asked for), `RollbackFailed`
/// (refused by the watermark, nothing to return to, or the rollout of the old version failed),
/// `Blocked` (the stage could not be read; nothing changed), `LockTimeout`.
pub async fn rollback<C: Cluster, N: Notify, R: Reporter>(
    plan: &Plan,
    request: &RollbackRequest,
    cluster: &C,
    notify: &N,
    reporter: &R,
) -> DeployOutcome {
    let Some(stage) = plan.stages.iter().find(|s| s.name == request.stage) else {
        return DeployOutcome::Blocked {
            stage: request.stage.clone(),
            reason: "no such stage".into(),
        };
    };
    let mut run = Run {
        plan,
        cluster,
        // A rollback runs no checks: it returns to a version that served before.
        checks: &(),
        notify,
        reporter,
        locked: None,
    };
    if let Err(outcome) = run.lock(stage).await {
        return outcome;
    }
    let work = async { Ok::<_, DeployOutcome>(roll_back_locked(&run, stage, request).await) };
    let outcome = match run.hold(stage, work).await {
        Ok(outcome) | Err(outcome) => outcome,
    };
    run.release().await;
    outcome
}

async fn roll_back_locked<C: Cluster, N: Notify, R: Reporter>(
    run: &Run<'_, C, (), N, R>,
    stage: &StagePlan,
    request: &RollbackRequest,
) -> DeployOutcome {
    let live = match run.cluster.live(stage).await {
        Ok(live) => live,
        Err(e) => {
            return DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!("cannot read the stage; nothing was changed: {e}"),
            };
        }
    };
    let (current, to) = match rollback_target(&live, request.to.as_ref(), &run.plan.command) {
        Target::Roll { current, to } => (current, to),
        Target::Nothing { version } => {
            run.reporter.step(
                Some(&stage.name),
                &format!("already serving {version}, nothing to do"),
            );
            return DeployOutcome::Done {
                deployed: vec![],
                skipped: vec![stage.name.clone()],
            };
        }
        Target::Refused(why) => {
            run.reporter
                .step(Some(&stage.name), &format!("rollback refused: {why}"));
            return DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: why,
            };
        }
    };
    let ctx = context(run.plan, stage, to.as_ref(), &current, &live);
    let watermark = match run.cluster.watermark(&stage.environment).await {
        Ok(mark) => mark,
        Err(e) => {
            return DeployOutcome::Blocked {
                stage: stage.name.clone(),
                reason: format!(
                    "cannot read the post-deployment migration watermark; nothing was changed: {e}"
                ),
            };
        }
    };
    let to = match decide::rollback_decision(to.as_ref(), watermark.as_ref(), request.force) {
        RollbackDecision::Refused(why) => {
            let why = match to {
                None => format!("{why}; name one with --to"),
                Some(_) => why,
            };
            run.reporter
                .step(Some(&stage.name), &format!("rollback refused: {why}"));
            run.notify
                .send(Some(stage), EventKind::RollbackRefused, &ctx, &why)
                .await;
            return DeployOutcome::RollbackFailed {
                stage: stage.name.clone(),
                reason: format!("rollback refused: {why}"),
            };
        }
        RollbackDecision::Allowed => to.unwrap_or_else(|| unreachable!("refused when None")),
    };
    if request.force && watermark.as_ref().is_some_and(|mark| to < *mark) {
        run.reporter.step(
            Some(&stage.name),
            &format!(
                "--force: rolling back below the post-deployment migrations of {}",
                watermark
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
        );
    }
    perform(run, stage, &ctx, &current, &to).await
}

/// Applies `to`, waits for it, records and notifies.
async fn perform<C: Cluster, N: Notify, R: Reporter>(
    run: &Run<'_, C, (), N, R>,
    stage: &StagePlan,
    ctx: &DeployContext,
    current: &Version,
    to: &Version,
) -> DeployOutcome {
    run.reporter
        .phase(&stage.name, super::ports::Phase::Rollback);
    run.reporter.step(
        Some(&stage.name),
        &format!("rolling back: {current} → {to}"),
    );
    run.notify
        .send(
            Some(stage),
            EventKind::RollbackStarted,
            ctx,
            &format!("rolling back {current} → {to} (on demand)"),
        )
        .await;
    let why = match run.revert(stage, to, current).await {
        Ok(()) => {
            run.reporter
                .step(Some(&stage.name), &format!("rolled back: serving {to}"));
            run.notify
                .send(
                    Some(stage),
                    EventKind::RollbackSucceeded,
                    ctx,
                    &format!("serving {to} again"),
                )
                .await;
            run.record(
                stage,
                "rolled-back",
                to,
                Some(current),
                Some("on demand (tagship rollback)"),
            )
            .await;
            return DeployOutcome::Done {
                deployed: vec![stage.name.clone()],
                skipped: vec![],
            };
        }
        Err(why) => why,
    };
    let why = format!("the rollback to {to} failed: {why}");
    run.notify
        .send(Some(stage), EventKind::RollbackFailed, ctx, &why)
        .await;
    run.record(stage, "failed", to, Some(current), Some(&why))
        .await;
    DeployOutcome::RollbackFailed {
        stage: stage.name.clone(),
        reason: why,
    }
}

/// Where a rollback of a stage goes, from what is live and the version asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// From `current` (the newest version live) to `to` (None: nothing recorded to return to).
    Roll {
        current: Version,
        to: Option<Version>,
    },
    /// The stage already serves `version`, rolled out.
    Nothing { version: Version },
    /// Not a rollback; nothing changes.
    Refused(String),
}

/// `command` is the rollback's own command line: a refusal that names the deploy to run instead
/// gives it the same `--config`.
fn rollback_target(live: &StageLive, asked: Option<&Version>, command: &CommandLine) -> Target {
    let Some(current) = live
        .workloads
        .iter()
        .filter_map(|w| w.version.clone())
        .max()
    else {
        return Target::Refused(
            "no workload of the stage runs a version of ours; nothing to roll back from".into(),
        );
    };
    let to = asked
        .cloned()
        .or_else(|| decide::previous_version(live, &current));
    match to {
        Some(to)
            if live
                .workloads
                .iter()
                .all(|w| w.version.as_ref() == Some(&to) && w.complete) =>
        {
            Target::Nothing { version: to }
        }
        Some(to) if to > current && asked.is_some() => {
            let version = to.to_string();
            let deploy = match command.value_of("--config") {
                Some(config) => CommandLine::new(["deploy", "--config", config]),
                None => CommandLine::new(["deploy"]),
            };
            Target::Refused(format!(
                "{to} is newer than {current}, which is live; that is a deploy: `{}`",
                deploy.with(&["--version", &version])
            ))
        }
        Some(to) if to > current => Target::Refused(format!(
            "the version recorded before {current} is {to}, which is newer (the stage was already rolled back); name the version with --to"
        )),
        to => Target::Roll { current, to },
    }
}

fn context(
    plan: &Plan,
    stage: &StagePlan,
    to: Option<&Version>,
    current: &Version,
    live: &StageLive,
) -> DeployContext {
    let mut ctx = super::driver::context_for(plan, Some(stage), Some(current), live);
    ctx.version = to.map_or_else(|| current.to_string(), ToString::to_string);
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing::{Call, FakeCluster, FakeNotify, Lines, plan, stage};

    fn request(to: Option<&str>, force: bool) -> RollbackRequest {
        RollbackRequest {
            stage: "gstg".into(),
            to: to.map(|v| v.parse().unwrap()),
            force,
        }
    }

    async fn run(
        cluster: &FakeCluster,
        request: &RollbackRequest,
    ) -> (DeployOutcome, FakeNotify, Lines) {
        let mut p = plan("v0.0.0", vec![stage("gstg", "gstg", false)]);
        p.command =
            CommandLine::new(["rollback", "--config", "ci/tagship.toml", "--stage", "gstg"]);
        let (notify, lines) = (FakeNotify::default(), Lines::default());
        let outcome = rollback(&p, request, cluster, &notify, &lines).await;
        (outcome, notify, lines)
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollback_returns_to_the_recorded_previous_version_under_the_lock() {
        let cluster = FakeCluster::with(&[("gstg", &["v2.0.0", "v2.0.0"])]);
        cluster
            .previous
            .lock()
            .unwrap()
            .insert("gstg".into(), "v1.0.0".parse().unwrap());
        let (outcome, notify, _) = run(&cluster, &request(None, false)).await;
        assert!(matches!(outcome, DeployOutcome::Done { .. }), "{outcome:?}");
        assert_eq!(cluster.versions("gstg"), ["v1.0.0", "v1.0.0"]);
        assert_eq!(
            *cluster.calls.lock().unwrap(),
            [
                Call::Lock("gstg".into()),
                Call::Apply {
                    stage: "gstg".into(),
                    version: "v1.0.0".into()
                },
                Call::Unlock("gstg".into()),
            ]
        );
        assert_eq!(
            notify.kinds(),
            [EventKind::RollbackStarted, EventKind::RollbackSucceeded]
        );
        let history = cluster.history.lock().unwrap();
        assert_eq!(history[0].1.action, "rolled-back");
        assert_eq!(history[0].1.previous.as_deref(), Some("v2.0.0"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollback_renews_its_lock_and_stops_when_it_is_taken_over() {
        let cluster = FakeCluster::with(&[("gstg", &["v2.0.0", "v2.0.0"])]);
        cluster
            .previous
            .lock()
            .unwrap()
            .insert("gstg".into(), "v1.0.0".parse().unwrap());
        // Renewed every 2 s; the rollout takes 3 s; the second lock request finds an intruder.
        *cluster.lose_lock_after.lock().unwrap() = Some(1);
        let mut p = plan("v0.0.0", vec![stage("gstg", "gstg", false)]);
        p.lock_ttl = std::time::Duration::from_secs(6);
        let (notify, lines) = (FakeNotify::default(), Lines::default());
        let outcome = rollback(&p, &request(None, false), &cluster, &notify, &lines).await;
        assert!(
            matches!(&outcome, DeployOutcome::Failed { reason, .. }
                if reason.contains("taken over by `intruder`")),
            "{outcome:?}"
        );
        assert!(
            cluster.history.lock().unwrap().is_empty(),
            "nothing recorded after the lock was lost"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollback_below_the_watermark_is_refused_unless_forced() {
        let cluster = FakeCluster::with(&[("gstg", &["v3.0.0"])]);
        cluster
            .watermarks
            .lock()
            .unwrap()
            .insert("gstg".into(), "v3.0.0".parse().unwrap());
        let (outcome, notify, lines) = run(&cluster, &request(Some("v2.0.0"), false)).await;
        assert!(
            matches!(&outcome, DeployOutcome::RollbackFailed { reason, .. } if reason.contains("forward-fix")),
            "{outcome:?}"
        );
        assert_eq!(cluster.versions("gstg"), ["v3.0.0"], "nothing changed");
        assert!(cluster.applies().is_empty());
        assert_eq!(notify.kinds(), [EventKind::RollbackRefused]);
        assert!(lines.contains("rollback refused"));
        assert!(
            cluster.calls.lock().unwrap().last() == Some(&Call::Unlock("gstg".into())),
            "the lock is released after a refusal"
        );

        let (outcome, _, lines) = run(&cluster, &request(Some("v2.0.0"), true)).await;
        assert!(matches!(outcome, DeployOutcome::Done { .. }), "{outcome:?}");
        assert_eq!(cluster.versions("gstg"), ["v2.0.0"]);
        assert!(lines.contains("--force"));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_to_return_to_is_refused_and_the_version_already_live_is_a_no_op() {
        let cluster = FakeCluster::with(&[("gstg", &["v2.0.0"])]);
        let (outcome, _, _) = run(&cluster, &request(None, false)).await;
        assert!(
            matches!(&outcome, DeployOutcome::RollbackFailed { reason, .. } if reason.contains("--to")),
            "{outcome:?}"
        );
        let (outcome, _, lines) = run(&cluster, &request(Some("v2.0.0"), false)).await;
        assert_eq!(
            outcome,
            DeployOutcome::Done {
                deployed: vec![],
                skipped: vec!["gstg".into()]
            }
        );
        assert!(lines.contains("already serving v2.0.0"));
        assert!(cluster.applies().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_rollback_does_not_roll_forward_to_the_recorded_version() {
        let cluster = FakeCluster::with(&[("gstg", &["v1.0.0"])]);
        cluster
            .previous
            .lock()
            .unwrap()
            .insert("gstg".into(), "v2.0.0".parse().unwrap());
        let (outcome, _, _) = run(&cluster, &request(None, false)).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { reason, .. } if reason.contains("already rolled back")),
            "{outcome:?}"
        );
        let (outcome, _, _) = run(&cluster, &request(Some("v3.0.0"), false)).await;
        assert!(
            matches!(&outcome, DeployOutcome::Blocked { reason, .. } if reason.contains("that is a deploy: `tagship deploy --config ci/tagship.toml --version v3.0.0`")),
            "{outcome:?}"
        );
        assert!(cluster.applies().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_rollback_needs_a_human() {
        let cluster = FakeCluster::with(&[("gstg", &["v2.0.0"])]);
        let (outcome, notify, _) = run(&cluster, &request(Some("v1.0.0-crashloop"), false)).await;
        assert!(
            matches!(&outcome, DeployOutcome::RollbackFailed { reason, .. } if reason.contains("ProgressDeadlineExceeded")),
            "{outcome:?}"
        );
        assert_eq!(
            notify.kinds(),
            [EventKind::RollbackStarted, EventKind::RollbackFailed]
        );
    }
}
