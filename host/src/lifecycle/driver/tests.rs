//! The driver against the lifecycle's fakes: every path of a run, stage by stage.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::lifecycle::BakePlan;
use crate::lifecycle::testing::{
    Call, FakeChecks, FakeCluster, FakeNotify, Lines, bake, plan, stage,
};

fn three_stages() -> Vec<StagePlan> {
    let mut cny = stage("gstg-cny", "gstg", false);
    cny.last_of_environment = false;
    let mut gstg = stage("gstg", "gstg", false);
    gstg.first_of_environment = false;
    let gprd = stage("gprd", "gprd", true);
    vec![cny, gstg, gprd]
}

fn cluster_at(version: &str) -> FakeCluster {
    FakeCluster::with(&[
        ("gstg-cny", &[version]),
        ("gstg", &[version, version]),
        ("gprd", &[version, version]),
    ])
}

async fn run(plan: &Plan, cluster: &FakeCluster) -> (DeployOutcome, FakeNotify, Lines) {
    let notify = FakeNotify::default();
    let lines = Lines::default();
    let outcome = deploy(plan, cluster, &FakeChecks::default(), &notify, &lines).await;
    (outcome, notify, lines)
}

#[tokio::test(start_paused = true)]
async fn a_release_walks_the_stages_and_stops_at_the_manual_gate_until_approved() {
    let cluster = cluster_at("v1.0.0");
    let mut p = plan("v2.0.0", three_stages());
    p.command = crate::lifecycle::CommandLine::new([
        "deploy",
        "--config",
        "ci/tagship.toml",
        "--version",
        "v2.0.0",
        "--allow-downgrade",
    ]);
    let (outcome, notify, lines) = run(&p, &cluster).await;
    assert_eq!(
        outcome,
        DeployOutcome::AwaitingApproval {
            stage: "gprd".into()
        }
    );
    assert_eq!(outcome.outcome(), Outcome::Done);
    assert_eq!(cluster.versions("gstg"), ["v2.0.0", "v2.0.0"]);
    assert_eq!(cluster.versions("gprd"), ["v1.0.0", "v1.0.0"]);
    // The command to go on is the one that ran, configuration and flags included.
    assert!(lines.contains(
        "continue with: tagship deploy --config ci/tagship.toml --version v2.0.0 --allow-downgrade --approve gprd"
    ));
    assert_eq!(notify.kinds().last(), Some(&EventKind::AwaitingApproval));

    let mut approved = p.clone();
    approved.approved.insert("gprd".into());
    let (outcome, notify, _) = run(&approved, &cluster).await;
    assert_eq!(
        outcome,
        DeployOutcome::Done {
            deployed: vec!["gprd".into()],
            skipped: vec!["gstg-cny".into(), "gstg".into()]
        }
    );
    assert_eq!(cluster.versions("gprd"), ["v2.0.0", "v2.0.0"]);
    assert_eq!(
        notify.kinds(),
        [
            EventKind::DeployStarted,
            EventKind::StageStarted,
            EventKind::StageSucceeded,
            EventKind::DeploySucceeded
        ]
    );
    let history = cluster.history.lock().unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|(_, r)| r.action == "deployed")
            .count(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn running_the_same_deploy_again_changes_nothing() {
    let cluster = cluster_at("v2.0.0");
    let mut p = plan("v2.0.0", three_stages());
    p.approved.insert("gprd".into());
    let (outcome, _, lines) = run(&p, &cluster).await;
    assert!(matches!(outcome, DeployOutcome::Done { ref deployed, .. } if deployed.is_empty()));
    assert!(cluster.applies().is_empty());
    assert!(
        !cluster
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| matches!(c, Call::Lock(_))),
        "no lock is taken for nothing"
    );
    assert!(lines.contains("already serving v2.0.0"));
}

#[tokio::test(start_paused = true)]
async fn a_stage_found_at_the_target_without_its_record_gets_one_once() {
    // An earlier run rolled out v2.0.0 everywhere and was killed before recording it.
    let cluster = cluster_at("v2.0.0");
    let mut p = plan("v2.0.0", three_stages());
    p.approved.insert("gprd".into());
    let (_, _, lines) = run(&p, &cluster).await;
    assert!(lines.contains("an earlier run applied it but did not record it"));
    {
        let history = cluster.history.lock().unwrap();
        assert_eq!(history.len(), 3, "{history:?}");
        assert!(history.iter().all(|(_, r)| {
            r.action == "deployed"
                && r.version == "v2.0.0"
                && r.reason
                    .as_deref()
                    .is_some_and(|why| why.contains("stopped before recording"))
        }));
    }
    // A second re-run finds the records and writes nothing.
    let (_, _, lines) = run(&p, &cluster).await;
    assert!(!lines.contains("did not record it"));
    assert_eq!(cluster.history.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failing_rollout_is_rolled_back_and_later_stages_are_untouched() {
    let cluster = cluster_at("v1.0.0");
    let (outcome, notify, _) = run(&plan("v2.0.0-crashloop", three_stages()), &cluster).await;
    match &outcome {
        DeployOutcome::Failed {
            stage,
            reason,
            rolled_back_to,
        } => {
            assert_eq!(stage, "gstg-cny");
            assert!(reason.contains("ProgressDeadlineExceeded"), "{reason}");
            assert_eq!(
                rolled_back_to.as_ref().map(ToString::to_string).as_deref(),
                Some("v1.0.0")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome.outcome(), Outcome::Failed);
    assert_eq!(cluster.versions("gstg-cny"), ["v1.0.0"]);
    assert_eq!(
        cluster.applies(),
        [
            ("gstg-cny".into(), "v2.0.0-crashloop".into()),
            ("gstg-cny".into(), "v1.0.0".into())
        ]
    );
    let kinds = notify.kinds();
    assert!(
        kinds.contains(&EventKind::RollbackStarted)
            && kinds.contains(&EventKind::RollbackSucceeded)
    );
    assert!(
        cluster
            .calls
            .lock()
            .unwrap()
            .contains(&Call::Unlock("gstg".into())),
        "the lock is released on failure"
    );
}

#[tokio::test(start_paused = true)]
async fn an_apply_that_fails_part_way_is_rolled_back_recorded_and_told() {
    let cluster = cluster_at("v1.0.0");
    cluster.apply_fails.lock().unwrap().insert("v2.0.0".into());
    let mut stages = three_stages();
    stages.remove(0);
    stages[0].first_of_environment = true;
    let (outcome, notify, _) = run(&plan("v2.0.0", stages), &cluster).await;
    match &outcome {
        DeployOutcome::Failed {
            stage,
            reason,
            rolled_back_to,
        } => {
            assert_eq!(stage, "gstg");
            assert!(
                reason.contains("apply failed") && reason.contains("422"),
                "{reason}"
            );
            assert_eq!(
                rolled_back_to.as_ref().map(ToString::to_string).as_deref(),
                Some("v1.0.0")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cluster.versions("gstg"),
        ["v1.0.0", "v1.0.0"],
        "not two versions"
    );
    let kinds = notify.kinds();
    for kind in [
        EventKind::StageFailed,
        EventKind::RollbackStarted,
        EventKind::RollbackSucceeded,
    ] {
        assert!(kinds.contains(&kind), "{kind:?}: {kinds:?}");
    }
    let history = cluster.history.lock().unwrap();
    assert!(
        history
            .iter()
            .any(|(s, r)| s == "gstg" && r.action == "rolled-back" && r.version == "v1.0.0"),
        "{history:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_apply_that_changed_nothing_fails_the_stage_without_a_rollback() {
    let cluster = cluster_at("v1.0.0");
    cluster
        .apply_refused
        .lock()
        .unwrap()
        .insert("v2.0.0".into());
    let (outcome, notify, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Failed { reason, rolled_back_to: None, .. }
            if reason.contains("nothing was applied")),
        "{outcome:?}"
    );
    assert!(!notify.kinds().contains(&EventKind::RollbackStarted));
    assert!(notify.kinds().contains(&EventKind::StageFailed));
    assert_eq!(cluster.history.lock().unwrap()[0].1.action, "failed");
}

#[tokio::test(start_paused = true)]
async fn a_rollback_that_fails_is_recorded() {
    let cluster = cluster_at("v1.0.0");
    cluster.apply_fails.lock().unwrap().insert("v1.0.0".into());
    let (outcome, notify, _) = run(&plan("v2.0.0-crashloop", three_stages()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::RollbackFailed { reason, .. }
            if reason.contains("the rollback to v1.0.0 failed too")),
        "{outcome:?}"
    );
    assert!(notify.kinds().contains(&EventKind::RollbackFailed));
    let history = cluster.history.lock().unwrap();
    assert!(
        history.iter().any(|(_, r)| r.action == "failed"
            && r.reason
                .as_deref()
                .is_some_and(|w| w.contains("failed too"))),
        "{history:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_bake_is_rolled_back() {
    let cluster = cluster_at("v2.0.0");
    let mut stages = three_stages();
    stages[0].bake = Some(bake());
    let (outcome, _, lines) = run(&plan("v3.0.0-errors", stages), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Failed { reason, .. } if reason.contains("bake failed")),
        "{outcome:?}"
    );
    assert_eq!(cluster.versions("gstg-cny"), ["v2.0.0"]);
    assert!(lines.contains("health FAIL"));
}

#[tokio::test(start_paused = true)]
async fn a_stage_over_two_clusters_is_checked_per_cluster_and_one_unhealthy_cluster_rolls_all_back()
{
    let cluster = cluster_at("v1.0.0");
    let mut stages = three_stages();
    stages[1].bake = Some(BakePlan {
        checks: vec!["health".into(), "unhealthy-in-cluster-1".into()],
        ..bake()
    });
    let checks = FakeChecks::default();
    let lines = Lines::default();
    let outcome = deploy(
        &plan("v2.0.0", stages),
        &cluster,
        &checks,
        &FakeNotify::default(),
        &lines,
    )
    .await;
    match &outcome {
        DeployOutcome::Failed {
            stage,
            reason,
            rolled_back_to,
        } => {
            assert_eq!(stage, "gstg");
            assert!(
                reason.contains("`unhealthy-in-cluster-1` in `cluster-1`: error ratio"),
                "{reason}"
            );
            assert!(!reason.contains("cluster-0"), "{reason}");
            assert_eq!(
                rolled_back_to.as_ref().map(ToString::to_string).as_deref(),
                Some("v1.0.0")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cluster.versions("gstg"),
        ["v1.0.0", "v1.0.0"],
        "the rollback covers every cluster of the stage"
    );
    assert!(lines.contains("unhealthy-in-cluster-1 FAIL in cluster-1: error ratio"));
    assert!(lines.contains("health pass in cluster-0"));
    // The bake's checks were asked per cluster, each about its own workloads as they are
    // after the rollout.
    let contexts = checks.contexts.lock().unwrap();
    let baked: Vec<&DeployContext> = contexts.iter().filter(|c| c.stage == "gstg").collect();
    assert_eq!(baked.len(), 2, "one call per cluster");
    for ctx in baked {
        assert_eq!(ctx.workloads.len(), 1, "{ctx:?}");
        let w = &ctx.workloads[0];
        assert_eq!(w.version.as_deref(), Some("v2.0.0"));
        assert_eq!(w.image, "registry.example.com/registry:v2.0.0-gitlab");
        assert_eq!(w.namespace, "gstg");
    }
}

#[tokio::test(start_paused = true)]
async fn a_healthy_bake_checks_every_interval_for_its_duration() {
    let cluster = cluster_at("v1.0.0");
    let mut stages = three_stages();
    stages[0].bake = Some(bake());
    let checks = FakeChecks::default();
    let started = Instant::now();
    let outcome = deploy(
        &plan("v2.0.0", stages),
        &cluster,
        &checks,
        &FakeNotify::default(),
        &Lines::default(),
    )
    .await;
    assert!(
        matches!(outcome, DeployOutcome::AwaitingApproval { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        checks.runs.lock().unwrap().len(),
        7,
        "rounds at 0, 10, ..., 60 s: the last at the end of the bake"
    );
    assert!(started.elapsed() >= Duration::from_mins(1));
}

#[tokio::test(start_paused = true)]
async fn bake_rounds_are_labelled_from_the_bake_s_beginning_in_lines_and_report_alike() {
    // Given a bake of 30 s every 10 s, after an initial delay of 10 s
    let cluster = cluster_at("v1.0.0");
    let mut stages = three_stages();
    stages[0].bake = Some(BakePlan {
        initial_delay: Duration::from_secs(10),
        duration: Duration::from_secs(30),
        ..bake()
    });
    let p = plan("v2.0.0", stages);
    let journal = crate::journal::Journal::new(Box::new(Lines::default()));
    let outcome = deploy(
        &p,
        &cluster,
        &FakeChecks::default(),
        &FakeNotify::default(),
        &journal,
    )
    .await;
    let ending = crate::journal::Ending::of(&outcome, String::new());
    let finished = journal.finish();
    let report = crate::journal::RunReport {
        plan: &p,
        finished: &finished,
        ending: &ending,
    }
    .json();

    // Then the first round, made after the delay, is at 10 s of 40 s, the last at 40 s
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["message"].as_str())
        .filter(|m| m.starts_with("bak"))
        .collect();
    assert_eq!(
        steps,
        [
            "baking for 40s, checking every 10s after an initial delay of 10s",
            "bake 10s/40s: health pass in cluster-0",
            "bake 20s/40s: health pass in cluster-0",
            "bake 30s/40s: health pass in cluster-0",
            "bake 40s/40s: health pass in cluster-0",
        ]
    );
    // And the report labels the same rounds the same way
    let rounds: Vec<(&str, u64)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["phase"] == "bake")
        .map(|c| {
            (
                c["round"].as_str().unwrap(),
                c["bake_seconds"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rounds,
        [
            ("bake 10s/40s", 10),
            ("bake 20s/40s", 20),
            ("bake 30s/40s", 30),
            ("bake 40s/40s", 40)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_pre_check_blocks_with_nothing_changed() {
    let cluster = cluster_at("v1.0.0");
    let mut stages = three_stages();
    stages[0].pre_checks = vec!["unhealthy-now".into()];
    let (outcome, notify, _) = run(&plan("v2.0.0", stages.clone()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Blocked { stage, .. } if stage == "gstg-cny"),
        "{outcome:?}"
    );
    assert_eq!(outcome.outcome(), Outcome::Blocked);
    assert!(cluster.applies().is_empty());
    assert!(notify.kinds().contains(&EventKind::CheckBlocked));

    stages[0].pre_checks = vec!["broken".into()];
    let (outcome, _, _) = run(&plan("v2.0.0", stages), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Blocked { reason, .. } if reason.contains("could not run")),
        "{outcome:?}"
    );
    assert!(
        cluster.applies().is_empty(),
        "a crashing check fails closed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_pre_deployment_migration_stops_the_stage_with_nothing_applied() {
    let cluster = cluster_at("v1.0.0");
    let mut p = plan("v2.0.0-fail", three_stages());
    p.pre_migrations = true;
    let (outcome, _, _) = run(&p, &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Failed { reason, rolled_back_to: None, .. } if reason.contains("nothing was applied")),
        "{outcome:?}"
    );
    assert!(cluster.applies().is_empty());
}

#[tokio::test(start_paused = true)]
async fn pre_migrations_run_once_per_environment_and_post_migrations_set_the_watermark() {
    let cluster = cluster_at("v1.0.0");
    let mut stages = three_stages();
    stages[1].post_migrations_after = true;
    let mut p = plan("v2.0.0", stages);
    p.pre_migrations = true;
    p.post_migrations = true;
    p.until = Some("gstg".into());
    let (outcome, _, _) = run(&p, &cluster).await;
    assert!(matches!(outcome, DeployOutcome::Done { .. }), "{outcome:?}");
    let migrations: Vec<_> = cluster
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| matches!(c, Call::Migrate { .. }))
        .cloned()
        .collect();
    assert_eq!(
        migrations,
        [
            Call::Migrate {
                stage: "gstg-cny".into(),
                kind: Migration::Pre,
                version: "v2.0.0".into()
            },
            Call::Migrate {
                stage: "gstg".into(),
                kind: Migration::Post,
                version: "v2.0.0".into()
            },
        ]
    );
    assert_eq!(
        cluster.watermarks.lock().unwrap()["gstg"].to_string(),
        "v2.0.0"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollback_below_the_watermark_is_refused_with_the_reason() {
    let cluster = cluster_at("v1.0.0");
    cluster
        .watermarks
        .lock()
        .unwrap()
        .insert("gstg".into(), "v1.5.0".parse().unwrap());
    let (outcome, notify, _) = run(&plan("v2.0.0-crashloop", three_stages()), &cluster).await;
    match &outcome {
        DeployOutcome::RollbackFailed { reason, .. } => assert!(
            reason.contains("post-deployment migrations of v1.5.0"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome.outcome(), Outcome::RollbackFailed);
    assert!(notify.kinds().contains(&EventKind::RollbackRefused));
}

#[tokio::test(start_paused = true)]
async fn a_held_lock_is_waited_for_then_times_out_naming_the_holder() {
    let cluster = cluster_at("v1.0.0");
    *cluster.held_by.lock().unwrap() = Some(Holder {
        who: "rails-auto-deploy".into(),
        reason: Some("deploying the app".into()),
        pipeline_url: Some("https://ci.example/p/9".into()),
        since: None,
    });
    let started = Instant::now();
    let (outcome, notify, lines) = run(&plan("v2.0.0", three_stages()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::LockTimeout { holder, .. } if holder.who == "rails-auto-deploy"),
        "{outcome:?}"
    );
    assert_eq!(outcome.outcome(), Outcome::LockTimeout);
    assert!(started.elapsed() >= Duration::from_mins(1));
    assert!(lines.contains("held by `rails-auto-deploy` (deploying the app)"));
    assert_eq!(
        notify
            .kinds()
            .iter()
            .filter(|k| **k == EventKind::LockWaiting)
            .count(),
        1,
        "told once"
    );
    assert!(cluster.applies().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_cannot_be_taken_blocks_at_once_when_asking_again_cannot_help() {
    let cluster = cluster_at("v1.0.0");
    *cluster.lock_error.lock().unwrap() = Some(PortError::permanent(
        "namespace `locks` does not exist; create it",
    ));
    let started = Instant::now();
    let (outcome, _, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Blocked { stage, reason }
            if stage == "gstg-cny" && reason.contains("create it") && reason.contains("nothing was changed")),
        "{outcome:?}"
    );
    assert_eq!(outcome.outcome(), Outcome::Blocked);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(*cluster.lock_requests.lock().unwrap(), 1);
    assert!(cluster.applies().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_keeps_failing_is_tried_within_the_wait_without_spinning() {
    let cluster = cluster_at("v1.0.0");
    *cluster.lock_error.lock().unwrap() = Some(PortError::new("the API server answered 503"));
    let started = Instant::now();
    let (outcome, _, lines) = run(&plan("v2.0.0", three_stages()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Blocked { reason, .. } if reason.contains("503")),
        "{outcome:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_mins(1) && took < Duration::from_secs(63),
        "{took:?}"
    );
    let requests = *cluster.lock_requests.lock().unwrap();
    assert!(
        (30..=32).contains(&requests),
        "one try per 2 s of the wait: {requests}"
    );
    assert_eq!(
        lines
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("cannot read the lock"))
            .count(),
        1,
        "said once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stage_already_deployed_runs_its_missing_post_migrations_under_the_lock() {
    // A run applied v2.0.0 everywhere and failed in gstg's post-deployment migrations.
    let cluster = cluster_at("v2.0.0");
    let mut stages = three_stages();
    stages[1].post_migrations_after = true;
    let mut p = plan("v2.0.0", stages);
    p.post_migrations = true;
    p.until = Some("gstg".into());
    let (outcome, _, _) = run(&p, &cluster).await;
    assert!(matches!(outcome, DeployOutcome::Done { .. }), "{outcome:?}");
    let calls = cluster.calls.lock().unwrap().clone();
    let lock = calls.iter().position(|c| *c == Call::Lock("gstg".into()));
    let migrate = calls.iter().position(|c| {
        matches!(
            c,
            Call::Migrate {
                kind: Migration::Post,
                ..
            }
        )
    });
    assert!(lock.is_some() && lock < migrate, "{calls:?}");
    assert_eq!(
        cluster.watermarks.lock().unwrap()["gstg"].to_string(),
        "v2.0.0"
    );
    assert!(cluster.holding.lock().unwrap().is_empty(), "released");
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_cannot_be_renewed_for_its_whole_time_to_live_stops_the_run() {
    let cluster = cluster_at("v1.0.0");
    let mut stages = three_stages();
    stages[0].bake = Some(bake());
    let mut p = plan("v2.0.0", stages);
    p.lock_ttl = Duration::from_secs(15);
    let notify = FakeNotify::default();
    let lines = Lines::default();
    let checks = FakeChecks::default();
    let run = deploy(&p, &cluster, &checks, &notify, &lines);
    let outage = async {
        // The lock is taken, then every request fails from 5 s on.
        tokio::time::sleep(Duration::from_secs(5)).await;
        *cluster.lock_error.lock().unwrap() = Some(PortError::new("connection refused"));
    };
    let (outcome, ()) = tokio::join!(run, outage);
    assert!(
        matches!(&outcome, DeployOutcome::Failed { reason, .. }
            if reason.contains("could not be renewed before it expired") && reason.contains("stopped changing")),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_lock_stops_the_run() {
    let cluster = cluster_at("v1.0.0");
    let mut stages = three_stages();
    stages[0].bake = Some(bake());
    *cluster.lose_lock_after.lock().unwrap() = Some(1);
    let (outcome, _, _) = run(&plan("v2.0.0", stages), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Failed { reason, .. } if reason.contains("taken over by `intruder`")),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_deployment_is_refused_before_any_change_naming_how_to_resume_it() {
    let cluster = cluster_at("v1.0.0");
    cluster.paused.lock().unwrap().insert("gstg-cny".into());
    let (outcome, _, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Blocked { stage, reason }
            if stage == "gstg-cny" && reason.contains("is paused")
                && reason.contains("kubectl --context cluster-0 -n gstg-cny rollout resume deployment/gitlab-registry")),
        "{outcome:?}"
    );
    assert_eq!(outcome.outcome(), Outcome::Blocked);
    assert!(
        cluster.calls.lock().unwrap().is_empty(),
        "not even the lock"
    );
}

#[tokio::test(start_paused = true)]
async fn a_downgrade_below_the_watermark_is_refused_as_a_rollback_is_unless_forced() {
    let cluster = cluster_at("v3.0.0");
    for env in ["gstg", "gprd"] {
        cluster
            .watermarks
            .lock()
            .unwrap()
            .insert(env.into(), "v3.0.0".parse().unwrap());
    }
    let mut p = plan("v2.0.0", three_stages());
    p.downgrade = crate::lifecycle::plan::Downgrade::Allowed;
    let (outcome, _, _) = run(&p, &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::RollbackFailed { reason, .. }
            if reason.contains("post-deployment migrations of v3.0.0") && reason.contains("--force")),
        "{outcome:?}"
    );
    assert_eq!(outcome.outcome(), Outcome::RollbackFailed);
    assert!(cluster.applies().is_empty());

    p.downgrade = crate::lifecycle::plan::Downgrade::BelowWatermark;
    let (outcome, _, lines) = run(&p, &cluster).await;
    assert!(
        matches!(outcome, DeployOutcome::AwaitingApproval { .. }),
        "{outcome:?}"
    );
    assert_eq!(cluster.versions("gstg-cny"), ["v2.0.0"]);
    assert!(lines.contains("--force: deploying v2.0.0 below"));
}

#[tokio::test(start_paused = true)]
async fn a_downgrade_is_refused_before_any_change() {
    let cluster = cluster_at("v3.0.0");
    let (outcome, _, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Blocked { reason, .. } if reason.contains("--allow-downgrade")),
        "{outcome:?}"
    );
    assert!(cluster.applies().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_newer_version_that_went_live_while_waiting_for_the_lock_is_not_overwritten() {
    let cluster = cluster_at("v1.0.0");
    *cluster.changed_while_waiting.lock().unwrap() =
        Some(("gstg-cny".into(), vec!["v3.0.0".parse().unwrap()]));
    let (outcome, _, _) = run(&plan("v2.0.0", three_stages()), &cluster).await;
    assert!(
        matches!(&outcome, DeployOutcome::Blocked { reason, .. }
            if reason.contains("v3.0.0 went live while this run waited for the lock")
                && reason.contains("--allow-downgrade")),
        "{outcome:?}"
    );
    assert!(cluster.applies().is_empty());
    assert_eq!(cluster.versions("gstg-cny"), ["v3.0.0"]);
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_run_is_finished_by_running_it_again() {
    // The earlier run applied v2.0.0 to gstg-cny and was killed during the rollout.
    let cluster = cluster_at("v1.0.0");
    cluster
        .live
        .lock()
        .unwrap()
        .insert("gstg-cny".into(), vec!["v2.0.0".parse().unwrap()]);
    cluster
        .previous
        .lock()
        .unwrap()
        .insert("gstg-cny".into(), "v1.0.0".parse().unwrap());
    cluster.incomplete.lock().unwrap().insert("gstg-cny".into());
    let mut stages = three_stages();
    stages[0].pre_checks = vec!["unhealthy-now".into()];
    let (outcome, _, lines) = run(&plan("v2.0.0", stages), &cluster).await;
    assert!(
        matches!(outcome, DeployOutcome::AwaitingApproval { .. }),
        "{outcome:?}"
    );
    assert!(lines.contains("resuming"));
    assert_eq!(cluster.versions("gstg"), ["v2.0.0", "v2.0.0"]);
}
