//! Pure decisions about a stage: enter it or not, roll back or not. No I/O, no clock.

use crate::version::Version;

use super::plan::{Gate, Plan, StagePlan};
use super::ports::{CheckOutcome, CheckResult, StageLive};

/// What to do with a stage, given what is live there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageAction {
    /// Every workload serves the target and its rollout is complete.
    Skip,
    /// Something newer than the target is live and downgrades were not allowed.
    RefuseDowngrade {
        /// The newest version live.
        live: Version,
    },
    /// A workload's version cannot be read from its image tag, so the target may be older than
    /// what it runs, and downgrades were not allowed.
    RefuseUnknown {
        /// Which workload, in which cluster, runs which image.
        unreadable: String,
    },
    /// A manual stage without `--approve`.
    AwaitApproval,
    /// A workload is paused (`kubectl rollout pause`): a change would never roll out.
    RefusePaused {
        /// The paused workload, as `cluster` and `deployment/container`.
        cluster: String,
        /// Its namespace.
        namespace: String,
        /// `deployment/container`.
        workload: String,
    },
    /// Deploy; `previous` is what a rollback would return to.
    Deploy {
        /// The version to roll back to.
        previous: Option<Version>,
        /// The target is already applied (an earlier run was interrupted): only wait for it.
        resume: bool,
    },
}

/// Decides what to do with `stage`.
#[must_use]
pub fn stage_action(plan: &Plan, stage: &StagePlan, live: &StageLive) -> StageAction {
    let target = &plan.target;
    let at_target = |w: &super::ports::WorkloadLive| w.version.as_ref() == Some(target);
    if !live.workloads.is_empty() && live.workloads.iter().all(|w| at_target(w) && w.complete) {
        return StageAction::Skip;
    }
    if plan.downgrade == super::plan::Downgrade::Refused
        && let Some(newest) = live
            .workloads
            .iter()
            .filter_map(|w| w.version.as_ref())
            .filter(|v| *v > target)
            .max()
    {
        return StageAction::RefuseDowngrade {
            live: newest.clone(),
        };
    }
    if let Some(paused) = live.workloads.iter().find(|w| w.paused) {
        return StageAction::RefusePaused {
            cluster: paused.cluster.clone(),
            namespace: paused.namespace.clone(),
            workload: paused.name.clone(),
        };
    }
    // A version that cannot be read may be newer than the target: fail closed, as for one
    // that is newer.
    let unreadable: Vec<String> = live
        .workloads
        .iter()
        .filter(|w| w.version.is_none())
        .map(|w| format!("`{}` in cluster `{}` runs `{}`", w.name, w.cluster, w.image))
        .collect();
    if plan.downgrade == super::plan::Downgrade::Refused && !unreadable.is_empty() {
        let whose = if unreadable.len() == 1 {
            "whose tag is not a version by the tag template"
        } else {
            "whose tags are not versions by the tag template"
        };
        return StageAction::RefuseUnknown {
            unreadable: format!("{}, {whose}", unreadable.join(", ")),
        };
    }
    if stage.gate == Gate::Manual && !plan.approved.contains(&stage.name) {
        return StageAction::AwaitApproval;
    }
    let resume = !live.workloads.is_empty() && live.workloads.iter().all(at_target);
    StageAction::Deploy {
        previous: previous_version(live, target),
        resume,
    }
}

/// Why a stage with a paused workload is refused, and how to go on.
#[must_use]
pub fn paused_reason(cluster: &str, namespace: &str, workload: &str) -> String {
    let deployment = workload.split('/').next().unwrap_or(workload);
    format!(
        "deployment `{deployment}` in namespace `{namespace}` of cluster `{cluster}` is paused \
         (`kubectl rollout pause`), so a change would not roll out; nothing was changed: resume \
         it with `kubectl --context {cluster} -n {namespace} rollout resume deployment/{deployment}` \
         (after asking who paused it, and why), then run again"
    )
}

/// The version to roll back to: the oldest non-target version live, or, when the target is
/// already everywhere (a resumed run), what tagship recorded as previous when it applied.
#[must_use]
pub fn previous_version(live: &StageLive, target: &Version) -> Option<Version> {
    let others = live
        .workloads
        .iter()
        .filter_map(|w| w.version.clone())
        .filter(|v| v != target);
    others.min().or_else(|| {
        live.workloads
            .iter()
            .filter_map(|w| w.previous.clone())
            .min()
    })
}

/// Whether the pre-checks let a stage proceed. Fails closed: anything but a pass blocks.
pub fn pre_check_verdict(results: &[CheckResult]) -> Result<(), String> {
    let problems: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            CheckOutcome::Pass => None,
            CheckOutcome::Fail(why) => Some(format!("{} failed: {why}", r.subject())),
            CheckOutcome::Unknown(why) => Some(format!("{} could not decide: {why}", r.subject())),
            CheckOutcome::Errored(why) => Some(format!("{} could not run: {why}", r.subject())),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Whether a rollback to `to` is allowed, given the environment's post-deployment migration
/// watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackDecision {
    /// Go ahead.
    Allowed,
    /// Refused, with the reason people must read.
    Refused(String),
}

/// Decides a rollback to `to` (None: there is nothing to roll back to).
#[must_use]
pub fn rollback_decision(
    to: Option<&Version>,
    watermark: Option<&Version>,
    force: bool,
) -> RollbackDecision {
    let Some(to) = to else {
        return RollbackDecision::Refused("there is no previous version to roll back to".into());
    };
    match watermark {
        Some(mark) if to < mark && !force => RollbackDecision::Refused(format!(
            "post-deployment migrations of {mark} have run in this environment; rolling back to {to} is unsafe (forward-fix instead, or `--force` if you know the schema allows it)"
        )),
        _ => RollbackDecision::Allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::ports::WorkloadLive;
    use crate::lifecycle::testing::{plan, stage};

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn live(items: &[(&str, bool)]) -> StageLive {
        StageLive {
            workloads: items
                .iter()
                .enumerate()
                .map(|(i, (version, complete))| WorkloadLive {
                    cluster: format!("c{i}"),
                    namespace: "gitlab".into(),
                    name: "registry/registry".into(),
                    image: format!("registry:{version}"),
                    version: Some(v(version)),
                    previous: None,
                    complete: *complete,
                    paused: false,
                    drift: None,
                })
                .collect(),
        }
    }

    #[test]
    fn stage_actions_follow_live_state_gate_and_versions() {
        let auto = stage("gstg", "gstg", false);
        let manual = stage("gprd", "gprd", true);
        let p = plan("v2.0.0", vec![auto.clone(), manual.clone()]);
        let mut approved = p.clone();
        approved.approved.insert("gprd".into());
        let mut downgrade_ok = p.clone();
        downgrade_ok.downgrade = crate::lifecycle::plan::Downgrade::Allowed;
        let cases: Vec<(&str, &Plan, &StagePlan, StageLive, StageAction)> = vec![
            (
                "at target and complete: skip",
                &p,
                &auto,
                live(&[("v2.0.0", true), ("v2.0.0", true)]),
                StageAction::Skip,
            ),
            (
                "at target but still rolling out: resume",
                &p,
                &auto,
                live(&[("v2.0.0", false)]),
                StageAction::Deploy {
                    previous: None,
                    resume: true,
                },
            ),
            (
                "older live: deploy, roll back to it",
                &p,
                &auto,
                live(&[("v1.0.0", true)]),
                StageAction::Deploy {
                    previous: Some(v("v1.0.0")),
                    resume: false,
                },
            ),
            (
                "mixed clusters: roll back to the oldest",
                &p,
                &auto,
                live(&[("v2.0.0", true), ("v1.5.0", true), ("v1.0.0", true)]),
                StageAction::Deploy {
                    previous: Some(v("v1.0.0")),
                    resume: false,
                },
            ),
            (
                "newer live: refused",
                &p,
                &auto,
                live(&[("v3.0.0", true)]),
                StageAction::RefuseDowngrade { live: v("v3.0.0") },
            ),
            (
                "newer live with --allow-downgrade: deploy",
                &downgrade_ok,
                &auto,
                live(&[("v3.0.0", true)]),
                StageAction::Deploy {
                    previous: Some(v("v3.0.0")),
                    resume: false,
                },
            ),
            (
                "manual without approval: wait",
                &p,
                &manual,
                live(&[("v1.0.0", true)]),
                StageAction::AwaitApproval,
            ),
            (
                "manual but already done: skip",
                &p,
                &manual,
                live(&[("v2.0.0", true)]),
                StageAction::Skip,
            ),
            (
                "manual with approval: deploy",
                &approved,
                &manual,
                live(&[("v1.0.0", true)]),
                StageAction::Deploy {
                    previous: Some(v("v1.0.0")),
                    resume: false,
                },
            ),
        ];
        for (name, plan, stage, live, expected) in cases {
            assert_eq!(stage_action(plan, stage, &live), expected, "{name}");
        }
    }

    #[test]
    fn a_version_that_cannot_be_read_may_be_newer_so_only_allow_downgrade_deploys_over_it() {
        let p = plan("v2.0.0", vec![stage("gstg", "gstg", false)]);
        let mut downgrade_ok = p.clone();
        downgrade_ok.downgrade = crate::lifecycle::plan::Downgrade::Allowed;
        let mut one = live(&[("v1.0.0", true), ("v1.0.0", true)]);
        one.workloads[1].image = "registry:latest".into();
        one.workloads[1].version = None;
        let mut two = one.clone();
        two.workloads[0].image = "registry@sha256:0123".into();
        two.workloads[0].version = None;
        let cases = [
            (
                &p,
                &one,
                StageAction::RefuseUnknown {
                    unreadable: "`registry/registry` in cluster `c1` runs `registry:latest`, whose tag is not a version by the tag template".into(),
                },
            ),
            (
                &p,
                &two,
                StageAction::RefuseUnknown {
                    unreadable: "`registry/registry` in cluster `c0` runs `registry@sha256:0123`, `registry/registry` in cluster `c1` runs `registry:latest`, whose tags are not versions by the tag template".into(),
                },
            ),
            (
                &downgrade_ok,
                &one,
                StageAction::Deploy {
                    previous: Some(v("v1.0.0")),
                    resume: false,
                },
            ),
        ];
        for (plan, live, expected) in cases {
            assert_eq!(stage_action(plan, &plan.stages[0], live), expected);
        }
    }

    #[test]
    fn a_pre_release_of_the_target_is_older_not_a_downgrade() {
        let p = plan("v3.0.0", vec![stage("gstg", "gstg", false)]);
        let action = stage_action(&p, &p.stages[0], &live(&[("v3.0.0-rc1", true)]));
        assert_eq!(
            action,
            StageAction::Deploy {
                previous: Some(v("v3.0.0-rc1")),
                resume: false
            }
        );
    }

    #[test]
    fn a_resumed_run_rolls_back_to_the_recorded_previous_version() {
        let mut l = live(&[("v2.0.0", false)]);
        l.workloads[0].previous = Some(v("v1.0.0"));
        assert_eq!(previous_version(&l, &v("v2.0.0")), Some(v("v1.0.0")));
    }

    #[test]
    fn pre_checks_fail_closed() {
        let r = |outcome| CheckResult {
            check: "health".into(),
            cluster: None,
            outcome,
        };
        assert_eq!(pre_check_verdict(&[r(CheckOutcome::Pass)]), Ok(()));
        assert!(
            pre_check_verdict(&[r(CheckOutcome::Fail("0 != 1".into()))])
                .unwrap_err()
                .contains("failed: 0 != 1")
        );
        assert!(
            pre_check_verdict(&[r(CheckOutcome::Unknown("empty".into()))])
                .unwrap_err()
                .contains("could not decide")
        );
        assert!(
            pre_check_verdict(&[r(CheckOutcome::Errored("trap".into()))])
                .unwrap_err()
                .contains("could not run")
        );
    }

    #[test]
    fn rollbacks_below_the_watermark_are_refused_unless_forced() {
        let (v1, v2) = (v("v1.0.0"), v("v2.0.0"));
        assert_eq!(
            rollback_decision(Some(&v1), None, false),
            RollbackDecision::Allowed
        );
        assert_eq!(
            rollback_decision(Some(&v2), Some(&v2), false),
            RollbackDecision::Allowed
        );
        let RollbackDecision::Refused(why) = rollback_decision(Some(&v1), Some(&v2), false) else {
            panic!()
        };
        assert!(
            why.contains("post-deployment migrations of v2.0.0") && why.contains("v1.0.0"),
            "{why}"
        );
        assert_eq!(
            rollback_decision(Some(&v1), Some(&v2), true),
            RollbackDecision::Allowed
        );
        assert!(matches!(
            rollback_decision(None, None, false),
            RollbackDecision::Refused(_)
        ));
    }
}
