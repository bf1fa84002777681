//! The record of one run, and the reports written from it.
//!
//! [`Journal`] is a [`Reporter`] that keeps every step, phase, check result and event with its
//! time, and passes each on to the display. When the run ends, [`RunReport`] turns the record
//! into the JSON report, the Markdown summary (with a Mermaid gantt timeline, which GitLab
//! renders) and the dotenv file for downstream jobs.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::context::{DeployContext, EventKind, rfc3339};
use crate::lifecycle::ports::{
    CheckOutcome, CheckResult, Notify, Phase, Reporter, StageEnd, bake_label,
};
use crate::lifecycle::{DeployOutcome, Plan, StagePlan};

#[derive(Debug, Clone)]
struct Step {
    at: SystemTime,
    stage: Option<String>,
    message: String,
}

#[derive(Debug, Clone)]
struct PhaseMark {
    at: SystemTime,
    stage: String,
    phase: &'static str,
}

#[derive(Debug, Clone)]
struct CheckMark {
    at: SystemTime,
    stage: String,
    phase: &'static str,
    check: String,
    cluster: Option<String>,
    status: &'static str,
    reason: Option<String>,
    /// For a round of the bake: its time since the bake began, and its label
    /// (`bake 10s/40s`), as the run's lines say it.
    round: Option<(std::time::Duration, String)>,
}

#[derive(Debug, Clone)]
struct EventMark {
    at: SystemTime,
    kind: EventKind,
    stage: Option<String>,
    message: String,
}

#[derive(Debug, Default)]
struct Record {
    steps: Vec<Step>,
    phases: Vec<PhaseMark>,
    checks: Vec<CheckMark>,
    events: Vec<EventMark>,
    stage_ends: Vec<(String, SystemTime, StageEnd)>,
}

/// Records a run and shows it through `display`.
pub struct Journal {
    display: Box<dyn Reporter + Send + Sync>,
    started: SystemTime,
    record: Mutex<Record>,
}

impl Journal {
    /// A journal starting now, showing through `display`.
    #[must_use]
    pub fn new(display: Box<dyn Reporter + Send + Sync>) -> Self {
        Journal {
            display,
            started: SystemTime::now(),
            record: Mutex::new(Record::default()),
        }
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records an event sent to the notifiers.
    pub fn event(&self, kind: EventKind, stage: Option<&str>, message: &str) {
        self.record().events.push(EventMark {
            at: SystemTime::now(),
            kind,
            stage: stage.map(str::to_owned),
            message: message.to_owned(),
        });
    }

    /// The last stage the run reported on.
    #[must_use]
    pub fn last_stage(&self) -> Option<String> {
        let record = self.record();
        record.steps.iter().rev().find_map(|s| s.stage.clone())
    }

    /// Ends the display (closes sections, clears the live line).
    pub fn finish(self) -> Finished {
        let Journal {
            display,
            started,
            record,
        } = self;
        drop(display);
        Finished {
            started,
            ended: SystemTime::now(),
            record: record
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }
}

impl Reporter for Journal {
    fn step(&self, stage: Option<&str>, message: &str) {
        self.record().steps.push(Step {
            at: SystemTime::now(),
            stage: stage.map(str::to_owned),
            message: message.to_owned(),
        });
        self.display.step(stage, message);
    }

    fn phase(&self, stage: &str, phase: Phase) {
        self.record().phases.push(PhaseMark {
            at: SystemTime::now(),
            stage: stage.to_owned(),
            phase: phase.name(),
        });
        self.display.phase(stage, phase);
    }

    fn checked(
        &self,
        stage: &str,
        phase: Phase,
        since: Option<std::time::Duration>,
        results: &[CheckResult],
    ) {
        let at = SystemTime::now();
        let round = match (phase, since) {
            (Phase::Bake { duration }, Some(since)) => Some((since, bake_label(since, duration))),
            _ => None,
        };
        self.record().checks.extend(results.iter().map(|r| {
            let (status, reason) = match &r.outcome {
                CheckOutcome::Pass => ("pass", None),
                CheckOutcome::Fail(why) => ("fail", Some(why.clone())),
                CheckOutcome::Unknown(why) => ("unknown", Some(why.clone())),
                CheckOutcome::Errored(why) => ("error", Some(why.clone())),
            };
            CheckMark {
                at,
                stage: stage.to_owned(),
                phase: phase.name(),
                check: r.check.clone(),
                cluster: r.cluster.clone(),
                status,
                reason,
                round: round.clone(),
            }
        }));
        self.display.checked(stage, phase, since, results);
    }

    fn stage_done(&self, stage: &str, end: StageEnd) {
        self.record()
            .stage_ends
            .push((stage.to_owned(), SystemTime::now(), end));
        self.display.stage_done(stage, end);
    }
}

/// Notifiers, with each event also written into the journal.
pub struct RecordingNotify<'a, N> {
    /// The notifiers.
    pub inner: &'a N,
    /// The journal.
    pub journal: &'a Journal,
}

impl<N: Notify> Notify for RecordingNotify<'_, N> {
    async fn send(
        &self,
        stage: Option<&StagePlan>,
        kind: EventKind,
        ctx: &DeployContext,
        message: &str,
    ) {
        self.journal
            .event(kind, stage.map(|s| s.name.as_str()), message);
        self.inner.send(stage, kind, ctx, message).await;
    }
}

/// A finished run's record.
#[derive(Debug)]
pub struct Finished {
    started: SystemTime,
    ended: SystemTime,
    record: Record,
}

/// How a run ended, as the reports say it.
#[derive(Debug, Clone)]
pub struct Ending {
    /// `done`, `awaiting-approval`, `blocked`, `lock-timeout`, `failed`, `rollback-failed`,
    /// `interrupted`.
    pub outcome: &'static str,
    /// The process exit code.
    pub exit_code: u8,
    /// The one-line summary printed at the end.
    pub summary: String,
    /// The stage where the run stopped (or its last stage).
    pub stage_reached: Option<String>,
    /// Stages deployed by this run.
    pub deployed: Vec<String>,
    /// Stages already at the target.
    pub skipped: Vec<String>,
    /// The version serving again after a rollback.
    pub rolled_back_to: Option<String>,
}

impl Ending {
    /// The ending of a run that returned `outcome`.
    #[must_use]
    pub fn of(outcome: &DeployOutcome, summary: String) -> Self {
        let (word, stage, deployed, skipped, rolled_back_to) = match outcome {
            DeployOutcome::Done { deployed, skipped } => {
                ("done", None, deployed.clone(), skipped.clone(), None)
            }
            DeployOutcome::AwaitingApproval { stage } => (
                "awaiting-approval",
                Some(stage.clone()),
                vec![],
                vec![],
                None,
            ),
            DeployOutcome::Blocked { stage, .. } => {
                ("blocked", Some(stage.clone()), vec![], vec![], None)
            }
            DeployOutcome::LockTimeout { .. } => ("lock-timeout", None, vec![], vec![], None),
            DeployOutcome::Failed {
                stage,
                rolled_back_to,
                ..
            } => (
                "failed",
                Some(stage.clone()),
                vec![],
                vec![],
                rolled_back_to.as_ref().map(ToString::to_string),
            ),
            DeployOutcome::RollbackFailed { stage, .. } => {
                ("rollback-failed", Some(stage.clone()), vec![], vec![], None)
            }
        };
        Ending {
            outcome: word,
            exit_code: outcome.outcome().code(),
            summary,
            stage_reached: stage,
            deployed,
            skipped,
            rolled_back_to,
        }
    }
}

/// Writes `text` to `path` atomically (a temporary file beside it, then a rename), so a reader
/// never sees half a report.
///
/// # Errors
///
/// When the directory does not exist or is not writable.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

mod reports;

pub use reports::RunReport;

#[cfg(test)]
mod tests;
