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

/// The reports of one finished run.
pub struct RunReport<'a> {
    /// The plan that ran.
    pub plan: &'a Plan,
    /// Its record.
    pub finished: &'a Finished,
    /// How it ended.
    pub ending: &'a Ending,
}

impl RunReport<'_> {
    /// Per stage: what happened to it in this run.
    fn stage_result(&self, stage: &str) -> String {
        let e = self.ending;
        if e.deployed.iter().any(|s| s == stage) {
            return "deployed".into();
        }
        if e.skipped.iter().any(|s| s == stage) {
            return "already there".into();
        }
        if e.stage_reached.as_deref() == Some(stage) {
            return match (e.outcome, &e.rolled_back_to) {
                ("failed", Some(to)) => format!("failed, rolled back to {to}"),
                ("awaiting-approval", _) => "awaiting approval".into(),
                (word, _) => word.replace('-', " "),
            };
        }
        // Stages this run went through before it stopped (the stopping stage is named above).
        match self.end_of(stage) {
            Some(StageEnd::Deployed) => "deployed".into(),
            Some(StageEnd::AlreadyThere) => "already there".into(),
            Some(StageEnd::Stopped) => "stopped".into(),
            None => "not reached".into(),
        }
    }

    fn end_of(&self, stage: &str) -> Option<StageEnd> {
        self.finished
            .record
            .stage_ends
            .iter()
            .rev()
            .find(|(s, _, _)| s == stage)
            .map(|(_, _, end)| *end)
    }

    /// The stages this run deployed, in order.
    fn deployed(&self) -> Vec<String> {
        self.plan
            .stages
            .iter()
            .filter(|s| self.end_of(&s.name) == Some(StageEnd::Deployed))
            .map(|s| s.name.clone())
            .collect()
    }

    /// When the run first and last did something in `stage`.
    fn stage_span(&self, stage: &str) -> Option<(SystemTime, SystemTime)> {
        let r = &self.finished.record;
        let times = r
            .steps
            .iter()
            .filter(|s| s.stage.as_deref() == Some(stage))
            .map(|s| s.at)
            .chain(r.phases.iter().filter(|p| p.stage == stage).map(|p| p.at))
            .chain(
                r.stage_ends
                    .iter()
                    .filter(|(s, _, _)| s == stage)
                    .map(|(_, t, _)| *t),
            );
        let (mut first, mut last) = (None::<SystemTime>, None::<SystemTime>);
        for t in times {
            first = Some(first.map_or(t, |f| f.min(t)));
            last = Some(last.map_or(t, |l| l.max(t)));
        }
        first.zip(last)
    }

    /// The JSON report.
    #[must_use]
    pub fn json(&self) -> Value {
        let r = &self.finished.record;
        let at = |t: &SystemTime| rfc3339(*t);
        json!({
            "tagship_version": env!("CARGO_PKG_VERSION"),
            "component": self.plan.component,
            "version": self.plan.target.to_string(),
            "deploy_id": self.plan.deploy_id,
            "pipeline_url": self.plan.pipeline_url,
            "started_at": at(&self.finished.started),
            "finished_at": at(&self.finished.ended),
            "outcome": self.ending.outcome,
            "exit_code": self.ending.exit_code,
            "summary": self.ending.summary,
            "stage_reached": self.ending.stage_reached,
            "rolled_back_to": self.ending.rolled_back_to,
            "stages": self.plan.stages.iter().map(|s| {
                let span = self.stage_span(&s.name);
                json!({
                    "name": s.name,
                    "environment": s.environment,
                    "result": self.stage_result(&s.name),
                    "started_at": span.map(|(a, _)| at(&a)),
                    "finished_at": span.map(|(_, b)| at(&b)),
                })
            }).collect::<Vec<_>>(),
            "steps": r.steps.iter().map(|s| json!({
                "at": at(&s.at), "stage": s.stage, "message": s.message,
            })).collect::<Vec<_>>(),
            "phases": r.phases.iter().map(|p| json!({
                "at": at(&p.at), "stage": p.stage, "phase": p.phase,
            })).collect::<Vec<_>>(),
            "checks": r.checks.iter().map(|c| json!({
                "at": at(&c.at), "stage": c.stage, "phase": c.phase, "check": c.check,
                "cluster": c.cluster, "status": c.status, "reason": c.reason,
                "bake_seconds": c.round.as_ref().map(|(since, _)| since.as_secs()),
                "round": c.round.as_ref().map(|(_, label)| label),
            })).collect::<Vec<_>>(),
            "events": r.events.iter().map(|e| json!({
                "at": at(&e.at), "kind": e.kind.name(), "stage": e.stage, "message": e.message,
            })).collect::<Vec<_>>(),
        })
    }

    /// The Markdown summary: the outcome, a table of stages, the timeline, failed checks.
    #[must_use]
    pub fn markdown(&self) -> String {
        let e = self.ending;
        let mut md = format!(
            "## tagship: {} {}: {}\n\n{}\n\n",
            self.plan.component,
            self.plan.target,
            e.outcome.replace('-', " "),
            escape_md(&e.summary)
        );
        if let Some(url) = &self.plan.pipeline_url {
            let _ = writeln!(md, "Pipeline: {url}\n");
        }
        md.push_str("| stage | environment | result | took |\n|---|---|---|---|\n");
        for s in &self.plan.stages {
            let took = self.stage_span(&s.name).map_or_else(String::new, |(a, b)| {
                format!("{}s", b.duration_since(a).unwrap_or_default().as_secs())
            });
            let _ = writeln!(
                md,
                "| {} | {} | {} | {took} |",
                s.name,
                s.environment,
                escape_md(&self.stage_result(&s.name))
            );
        }
        md.push('\n');
        md.push_str(&self.gantt());
        let problems: Vec<&CheckMark> = self
            .finished
            .record
            .checks
            .iter()
            .filter(|c| c.status != "pass")
            .collect();
        if !problems.is_empty() {
            md.push_str("\n### Checks that did not pass\n\n| time | stage | phase | check | cluster | result |\n|---|---|---|---|---|---|\n");
            for c in problems {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {}: {} |",
                    hms(c.at),
                    c.stage,
                    c.round
                        .as_ref()
                        .map_or(c.phase, |(_, label)| label.as_str()),
                    c.check,
                    c.cluster.as_deref().unwrap_or(""),
                    c.status,
                    escape_md(c.reason.as_deref().unwrap_or(""))
                );
            }
        }
        md
    }

    /// A Mermaid gantt chart: one section per stage, one bar per phase, failures in red.
    fn gantt(&self) -> String {
        let r = &self.finished.record;
        let mut chart = format!(
            "```mermaid\ngantt\n    title {} {} ({})\n    dateFormat YYYY-MM-DD HH:mm:ss\n    axisFormat %H:%M:%S\n",
            self.plan.component, self.plan.target, self.ending.outcome
        );
        let mut id = 0;
        for stage in &self.plan.stages {
            let phases: Vec<&PhaseMark> =
                r.phases.iter().filter(|p| p.stage == stage.name).collect();
            if phases.is_empty() {
                continue;
            }
            let end_of_stage = r
                .stage_ends
                .iter()
                .rev()
                .find(|(s, _, _)| *s == stage.name)
                .map_or(self.finished.ended, |(_, t, _)| *t);
            let failed_here = self.ending.stage_reached.as_deref() == Some(stage.name.as_str())
                && matches!(
                    self.ending.outcome,
                    "failed" | "rollback-failed" | "blocked"
                );
            let _ = writeln!(chart, "    section {}", stage.name);
            for (i, p) in phases.iter().enumerate() {
                let end = phases.get(i + 1).map_or(end_of_stage, |next| next.at);
                let last = i + 1 == phases.len();
                let status = if p.phase == "rollback" || (failed_here && last) {
                    "crit"
                } else {
                    "done"
                };
                let _ = writeln!(
                    chart,
                    "    {} :{status}, p{id}, {}, {}",
                    p.phase,
                    mermaid_time(p.at),
                    mermaid_time(end.max(p.at))
                );
                id += 1;
            }
        }
        chart.push_str("```\n");
        chart
    }

    /// The dotenv file for `artifacts:reports:dotenv`: `TAGSHIP_*` variables.
    #[must_use]
    pub fn dotenv(&self) -> String {
        let e = self.ending;
        let mut vars = vec![
            ("TAGSHIP_OUTCOME", e.outcome.to_owned()),
            ("TAGSHIP_EXIT_CODE", e.exit_code.to_string()),
            ("TAGSHIP_VERSION", self.plan.target.to_string()),
            ("TAGSHIP_COMPONENT", self.plan.component.clone()),
            ("TAGSHIP_DEPLOY_ID", self.plan.deploy_id.clone()),
            (
                "TAGSHIP_STAGE_REACHED",
                e.stage_reached
                    .clone()
                    .or_else(|| e.deployed.last().or(e.skipped.last()).cloned())
                    .unwrap_or_default(),
            ),
            ("TAGSHIP_DEPLOYED_STAGES", self.deployed().join(",")),
        ];
        if let Some(to) = &e.rolled_back_to {
            vars.push(("TAGSHIP_ROLLED_BACK_TO", to.clone()));
        }
        let mut text = String::new();
        for (key, value) in vars {
            // One line per variable: GitLab's dotenv reader takes no multi-line values.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            let _ = writeln!(text, "{key}={value}");
        }
        text
    }
}

fn hms(t: SystemTime) -> String {
    rfc3339(t).get(11..19).unwrap_or("").to_owned()
}

fn mermaid_time(t: SystemTime) -> String {
    rfc3339(t).trim_end_matches('Z').replace('T', " ")
}

/// Keeps a table cell in one cell: no pipes, no line breaks.
fn escape_md(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing::{plan, stage};

    fn finished_run() -> (Plan, Finished) {
        let p = plan(
            "v2.0.0",
            vec![
                stage("gstg-cny", "gstg", false),
                stage("gprd", "gprd", true),
            ],
        );
        let journal = Journal::new(Box::new(crate::progress::Lines));
        journal.phase("gstg-cny", Phase::PreChecks);
        journal.checked(
            "gstg-cny",
            Phase::PreChecks,
            None,
            &[CheckResult {
                check: "health".into(),
                cluster: None,
                outcome: CheckOutcome::Pass,
            }],
        );
        journal.phase("gstg-cny", Phase::Rollout);
        journal.step(Some("gstg-cny"), "applying v2.0.0");
        journal.phase(
            "gstg-cny",
            Phase::Bake {
                duration: std::time::Duration::from_secs(30),
            },
        );
        journal.checked(
            "gstg-cny",
            Phase::Bake {
                duration: std::time::Duration::from_secs(30),
            },
            Some(std::time::Duration::from_secs(10)),
            &[CheckResult {
                check: "health".into(),
                cluster: None,
                outcome: CheckOutcome::Fail("error ratio | 0.2 > 0.05".into()),
            }],
        );
        journal.phase("gstg-cny", Phase::Rollback);
        journal.event(EventKind::RollbackStarted, Some("gstg-cny"), "rolling back");
        journal.stage_done("gstg-cny", StageEnd::Stopped);
        (p, journal.finish())
    }

    fn failed() -> DeployOutcome {
        DeployOutcome::Failed {
            stage: "gstg-cny".into(),
            reason: "bake failed".into(),
            rolled_back_to: Some("v1.0.0".parse().unwrap()),
        }
    }

    #[test]
    fn the_json_report_has_every_step_check_and_event_with_the_outcome() {
        let (p, finished) = finished_run();
        let ending = Ending::of(&failed(), "failed in `gstg-cny`".into());
        let report = RunReport {
            plan: &p,
            finished: &finished,
            ending: &ending,
        };
        let json = report.json();
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["exit_code"], 1);
        assert_eq!(json["rolled_back_to"], "v1.0.0");
        assert_eq!(json["stages"][0]["result"], "failed, rolled back to v1.0.0");
        assert_eq!(json["stages"][1]["result"], "not reached");
        assert_eq!(json["steps"][0]["message"], "applying v2.0.0");
        assert_eq!(json["checks"][1]["status"], "fail");
        assert_eq!(json["checks"][1]["phase"], "bake");
        assert_eq!(json["checks"][1]["round"], "bake 10s/30s");
        assert_eq!(json["checks"][1]["bake_seconds"], 10);
        assert_eq!(json["checks"][0]["round"], serde_json::Value::Null);
        assert_eq!(json["events"][0]["kind"], "rollback-started");
        assert_eq!(
            json["phases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["phase"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["pre-checks", "rollout", "bake", "rollback"]
        );
    }

    #[test]
    fn the_markdown_summary_has_the_table_the_timeline_and_the_failed_checks() {
        let (p, finished) = finished_run();
        let ending = Ending::of(&failed(), "failed in `gstg-cny`".into());
        let md = RunReport {
            plan: &p,
            finished: &finished,
            ending: &ending,
        }
        .markdown();
        assert!(
            md.starts_with("## tagship: registry v2.0.0: failed\n"),
            "{md}"
        );
        assert!(
            md.contains("| gstg-cny | gstg | failed, rolled back to v1.0.0 |"),
            "{md}"
        );
        assert!(md.contains("| gprd | gprd | not reached |"), "{md}");
        assert!(md.contains("```mermaid\ngantt\n"), "{md}");
        assert!(
            md.contains("    section gstg-cny\n    pre-checks :done, p0, "),
            "{md}"
        );
        assert!(md.contains("    rollback :crit, p3, "), "{md}");
        assert!(
            md.contains("| bake 10s/30s | health |  | fail: error ratio \\| 0.2 > 0.05 |"),
            "the round as the lines label it; the pipe is escaped: {md}"
        );
    }

    #[test]
    fn the_dotenv_file_has_one_tagship_variable_per_line() {
        let (p, finished) = finished_run();
        let ending = Ending::of(&failed(), "x".into());
        let dotenv = RunReport {
            plan: &p,
            finished: &finished,
            ending: &ending,
        }
        .dotenv();
        assert!(dotenv.contains("TAGSHIP_OUTCOME=failed\n"), "{dotenv}");
        assert!(dotenv.contains("TAGSHIP_EXIT_CODE=1\n"), "{dotenv}");
        assert!(
            dotenv.contains("TAGSHIP_STAGE_REACHED=gstg-cny\n"),
            "{dotenv}"
        );
        assert!(
            dotenv.contains("TAGSHIP_ROLLED_BACK_TO=v1.0.0\n"),
            "{dotenv}"
        );
        assert!(dotenv.lines().all(|l| l.starts_with("TAGSHIP_")));
    }
}
