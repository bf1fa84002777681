//! What a deploy would do, stage by stage, from what is live now: `tagship plan` and
//! `tagship deploy --dry-run`. Reads only; the decision per stage is [`decide::stage_action`],
//! the same one a real run takes, so the preview cannot drift from the deploy.

use crate::version::Version;

use super::decide::{self, StageAction};
use super::driver::approve_command;
use super::plan::Plan;
use super::ports::{PortError, StageLive, Workloads};

/// What a run would do with one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Already serving the target; nothing to do.
    Skip,
    /// Deploy the target; a failure would roll back to `previous`.
    Deploy {
        /// What a rollback would return to.
        previous: Option<Version>,
        /// The target is applied but not rolled out (an interrupted run): only wait.
        resume: bool,
    },
    /// A manual stage: the run stops before it without `--approve`.
    AwaitApproval {
        /// The command that enters it.
        command: String,
    },
    /// Something newer than the target is live; the run would be refused here.
    RefuseDowngrade {
        /// The newest version live.
        live: Version,
    },
    /// A workload is paused; the run would be refused here.
    RefusePaused {
        /// Which, and how to resume it.
        reason: String,
    },
    /// A workload's version cannot be read; the run would be refused here.
    RefuseUnknown {
        /// Which workload, in which cluster, runs which image.
        unreadable: String,
    },
    /// The run stops before this stage.
    NotReached {
        /// Why.
        reason: String,
    },
    /// The stage could not be read; the run would stop here.
    Unreadable,
}

impl Action {
    /// A short word for tables and JSON.
    #[must_use]
    pub fn word(&self) -> &'static str {
        match self {
            Action::Skip => "nothing",
            Action::Deploy { resume: true, .. } => "resume",
            Action::Deploy { .. } => "deploy",
            Action::AwaitApproval { .. } => "await-approval",
            Action::RefuseDowngrade { .. } => "refuse-downgrade",
            Action::RefusePaused { .. } => "refuse-paused",
            Action::RefuseUnknown { .. } => "refuse-unknown-version",
            Action::NotReached { .. } => "not-reached",
            Action::Unreadable => "unreadable",
        }
    }
}

/// One stage of a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePreview {
    /// The stage.
    pub stage: String,
    /// Its environment.
    pub environment: String,
    /// What is live there now, or why it could not be read.
    pub live: Result<StageLive, PortError>,
    /// What a run would do.
    pub action: Action,
}

/// Reads every stage and says what a run of `plan` would do with it.
pub async fn preview<C: Workloads>(plan: &Plan, cluster: &C) -> Vec<StagePreview> {
    let mut lives = Vec::with_capacity(plan.stages.len());
    for stage in &plan.stages {
        lives.push(cluster.live(stage).await);
    }
    previews(plan, lives)
}

/// The pure part of [`preview`]: `lives` holds one read per stage of `plan`, in order.
#[must_use]
pub fn previews(plan: &Plan, lives: Vec<Result<StageLive, PortError>>) -> Vec<StagePreview> {
    let mut stopped: Option<String> = None;
    plan.stages
        .iter()
        .zip(lives)
        .map(|(stage, live)| {
            let action = if let Some(reason) = &stopped {
                Action::NotReached {
                    reason: reason.clone(),
                }
            } else {
                match &live {
                    Err(_) => {
                        stopped = Some(format!("`{}` cannot be read", stage.name));
                        Action::Unreadable
                    }
                    Ok(live) => match decide::stage_action(plan, stage, live) {
                        StageAction::Skip => Action::Skip,
                        StageAction::Deploy { previous, resume } => {
                            Action::Deploy { previous, resume }
                        }
                        StageAction::AwaitApproval => {
                            stopped =
                                Some(format!("the run stops at the gate of `{}`", stage.name));
                            Action::AwaitApproval {
                                command: approve_command(plan, &stage.name),
                            }
                        }
                        StageAction::RefuseDowngrade { live } => {
                            stopped = Some(format!("the run is refused at `{}`", stage.name));
                            Action::RefuseDowngrade { live }
                        }
                        StageAction::RefusePaused {
                            cluster,
                            namespace,
                            workload,
                        } => {
                            stopped = Some(format!("the run is refused at `{}`", stage.name));
                            Action::RefusePaused {
                                reason: decide::paused_reason(&cluster, &namespace, &workload),
                            }
                        }
                        StageAction::RefuseUnknown { unreadable } => {
                            stopped = Some(format!("the run is refused at `{}`", stage.name));
                            Action::RefuseUnknown { unreadable }
                        }
                    },
                }
            };
            if stopped.is_none() && plan.until.as_deref() == Some(stage.name.as_str()) {
                stopped = Some(format!("the run stops after `{}` (--until)", stage.name));
            }
            StagePreview {
                stage: stage.name.clone(),
                environment: stage.environment.clone(),
                live,
                action,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing::{FakeCluster, plan, stage};

    fn three() -> Vec<crate::lifecycle::StagePlan> {
        vec![
            stage("gstg-cny", "gstg", false),
            stage("gstg", "gstg", false),
            stage("gprd", "gprd", true),
        ]
    }

    fn words(previews: &[StagePreview]) -> Vec<&'static str> {
        previews.iter().map(|p| p.action.word()).collect()
    }

    #[tokio::test]
    async fn a_preview_says_what_each_stage_would_do_and_changes_nothing() {
        let cluster = FakeCluster::with(&[
            ("gstg-cny", &["v2.0.0"]),
            ("gstg", &["v1.0.0"]),
            ("gprd", &["v1.0.0"]),
        ]);
        let p = plan("v2.0.0", three());
        let previews = preview(&p, &cluster).await;
        assert_eq!(words(&previews), ["nothing", "deploy", "await-approval"]);
        assert_eq!(
            previews[1].action,
            Action::Deploy {
                previous: Some("v1.0.0".parse().unwrap()),
                resume: false
            }
        );
        assert!(
            cluster.calls.lock().unwrap().is_empty(),
            "a preview only reads"
        );
    }

    #[tokio::test]
    async fn stages_after_a_stop_are_not_reached() {
        let cluster = FakeCluster::with(&[
            ("gstg-cny", &["v3.0.0"]),
            ("gstg", &["v1.0.0"]),
            ("gprd", &["v1.0.0"]),
        ]);
        let previews = preview(&plan("v2.0.0", three()), &cluster).await;
        assert_eq!(
            words(&previews),
            ["refuse-downgrade", "not-reached", "not-reached"]
        );

        let mut p = plan("v2.0.0", three());
        p.until = Some("gstg-cny".into());
        let cluster = FakeCluster::with(&[
            ("gstg-cny", &["v1.0.0"]),
            ("gstg", &["v1.0.0"]),
            ("gprd", &["v1.0.0"]),
        ]);
        let previews = preview(&p, &cluster).await;
        assert_eq!(words(&previews), ["deploy", "not-reached", "not-reached"]);
        assert!(
            matches!(&previews[1].action, Action::NotReached { reason } if reason.contains("--until"))
        );
    }

    #[tokio::test]
    async fn an_approved_gate_is_entered_and_an_unreadable_stage_stops_the_preview() {
        let mut p = plan("v2.0.0", three());
        p.approved.insert("gprd".into());
        let cluster = FakeCluster::with(&[("gstg-cny", &["v1.0.0"]), ("gprd", &["v1.0.0"])]);
        let previews = preview(&p, &cluster).await;
        assert_eq!(words(&previews), ["deploy", "unreadable", "not-reached"]);
        assert!(previews[1].live.is_err());
    }
}
