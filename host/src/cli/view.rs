//! What `plan` and `status` show of a stage, and `history` of its record, as typed views: each
//! is read once from the ports and printed by one printer, as text or as JSON, so the two forms
//! cannot disagree and a field the text needs is a field of the type (a misspelt name does not
//! compile, where an index into JSON printed a blank).

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cluster::LockInfo;
use crate::lifecycle::Action;
use crate::lifecycle::ports::{CheckOutcome, CheckResult, JobPreview, StageLive};
use crate::version::Version;

/// A stage as it is now, and (for `plan`) what a deploy would do to it.
pub(super) struct StageView {
    pub(super) stage: String,
    pub(super) environment: String,
    /// `auto` or `manual`.
    pub(super) gate: &'static str,
    /// Its workloads, or why they could not be read.
    pub(super) live: Result<StageLive, String>,
    /// What a deploy of the plan's target would do (`plan` only).
    pub(super) action: Option<Action>,
    pub(super) lock: LockView,
    /// The post-deployment migration watermark, or why it could not be read.
    pub(super) watermark: Result<Option<Version>, String>,
    /// The health checks, run once now.
    pub(super) health: Vec<CheckResult>,
    /// The newest entry of its history.
    pub(super) last: Option<Value>,
    /// The migration Jobs a deploy would run (`plan` of a stage it would deploy).
    pub(super) migrations: Option<Vec<MigrationView>>,
}

/// The environment's lock as a stage shows it.
pub(super) enum LockView {
    /// No Lease, or one nobody holds.
    Free,
    /// The Lease as read (held, or expired: `info.expired`).
    Read(LockInfo),
    /// It could not be read.
    Unreadable(String),
}

/// One migration Job a deploy would run: its kind (`pre-deployment`) and the Job, or why it
/// cannot be built.
pub(super) struct MigrationView {
    pub(super) kind: &'static str,
    pub(super) job: Result<JobPreview, String>,
}

impl StageView {
    /// The stage as JSON (the form `--output json` prints).
    pub(super) fn json(&self) -> Value {
        let lock = match &self.lock {
            LockView::Free => json!({"held": false}),
            LockView::Read(info) => json!({
                "held": !info.expired,
                "holder": info.holder.who,
                "reason": info.holder.reason,
                "pipeline_url": info.holder.pipeline_url,
                "since": info.holder.since,
                "expires_in_seconds": info.expires_in.map(|d| d.as_secs()),
            }),
            LockView::Unreadable(e) => json!({"error": e}),
        };
        let watermark = match &self.watermark {
            Ok(mark) => json!(mark.as_ref().map(ToString::to_string)),
            Err(e) => json!({"error": e}),
        };
        let live = match &self.live {
            Ok(live) => workloads_json(live),
            Err(e) => json!({"error": e}),
        };
        let mut value = json!({
            "stage": self.stage,
            "environment": self.environment,
            "gate": self.gate,
            "live": live,
            "lock": lock,
            "post_migrated_version": watermark,
            "health": self.health.iter().map(check_json).collect::<Vec<_>>(),
            "last": self.last,
        });
        if let Some(action) = &self.action {
            value["action"] = action_json(action);
        }
        if let Some(migrations) = &self.migrations {
            value["migrations"] = Value::Array(
                migrations
                    .iter()
                    .map(|m| match &m.job {
                        Ok(job) => json!({"kind": m.kind, "job": job_json(job)}),
                        Err(e) => json!({"kind": m.kind, "error": e}),
                    })
                    .collect(),
            );
        }
        value
    }

    /// The stage as text: header, workloads (each `→ target` for a plan), lock, watermark,
    /// health, migrations, last change.
    pub(super) fn text(&self, target: Option<&Version>) -> String {
        let mut text = format!(
            "{} (environment {}, {} gate)",
            self.stage, self.environment, self.gate
        );
        match &self.live {
            Ok(live) => {
                for w in &live.workloads {
                    let version = w
                        .version
                        .as_ref()
                        .map_or_else(|| "(not a tagship image)".to_owned(), ToString::to_string);
                    let _ = write!(text, "\n    {} {}: {version}", w.cluster, w.name);
                    if let Some(target) = target {
                        let _ = write!(text, " → {target}");
                    }
                    if !w.complete {
                        text.push_str(" (rollout not complete)");
                    }
                    if w.paused {
                        text.push_str(" (paused)");
                    }
                    if let Some(drift) = &w.drift {
                        let _ = write!(text, "\n      drift: {drift}");
                    }
                }
            }
            Err(e) => {
                let _ = write!(text, "\n    cannot read: {e}");
            }
        }
        let lock = match &self.lock {
            LockView::Read(info) if !info.expired => {
                let mut t = format!("held by `{}`", info.holder.who);
                if let Some(since) = &info.holder.since {
                    let _ = write!(t, " since {since}");
                }
                if let Some(reason) = &info.holder.reason {
                    let _ = write!(t, " ({reason})");
                }
                t
            }
            LockView::Unreadable(e) => format!("cannot read: {e}"),
            LockView::Free | LockView::Read(_) => "free".into(),
        };
        let _ = write!(text, "\n    lock: {lock}");
        if let Ok(Some(mark)) = &self.watermark {
            let _ = write!(text, "\n    post-deployment migrations at: {mark}");
        }
        for c in &self.health {
            let on = c
                .cluster
                .as_ref()
                .map(|c| format!(" in {c}"))
                .unwrap_or_default();
            let (status, reason) = check_status(&c.outcome);
            let _ = write!(text, "\n    health: {}{on} {status}", c.check);
            if let Some(reason) = reason {
                let _ = write!(text, ": {reason}");
            }
        }
        for m in self.migrations.iter().flatten() {
            match &m.job {
                Ok(job) => {
                    let _ = write!(
                        text,
                        "\n    {} migrations: {}",
                        m.kind,
                        job_text(job, "    ")
                    );
                }
                Err(e) => {
                    let _ = write!(
                        text,
                        "\n    {} migrations: cannot build the Job: {e}",
                        m.kind
                    );
                }
            }
        }
        if let Some(last) = self.last.as_ref().filter(|l| l.is_object()) {
            let last = history_line(last).replace('\n', "\n    ");
            let _ = write!(text, "\n    last: {last}");
        }
        text
    }
}

/// One entry of a stage's history as it is stored (the ledger's JSON), read for text.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct HistoryEntry {
    at: String,
    action: String,
    version: String,
    previous: Option<String>,
    by: String,
    pipeline_url: Option<String>,
    reason: Option<String>,
}

/// One history entry as a line (and its reason on the next).
pub(super) fn history_line(entry: &Value) -> String {
    let entry: HistoryEntry = serde_json::from_value(entry.clone()).unwrap_or_default();
    let mut line = format!("{}  {:<12} {}", entry.at, entry.action, entry.version);
    if let Some(previous) = entry.previous.filter(|p| !p.is_empty()) {
        let _ = write!(line, " (from {previous})");
    }
    let _ = write!(line, "  by {}", entry.by);
    if let Some(url) = entry.pipeline_url.filter(|u| !u.is_empty()) {
        let _ = write!(line, "  {url}");
    }
    if let Some(reason) = entry.reason.filter(|r| !r.is_empty()) {
        let _ = write!(line, "\n    reason: {reason}");
    }
    line
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

/// A check's status word and reason, as both forms print them.
fn check_status(outcome: &CheckOutcome) -> (&'static str, Option<&String>) {
    match outcome {
        CheckOutcome::Pass => ("pass", None),
        CheckOutcome::Fail(why) => ("fail", Some(why)),
        CheckOutcome::Unknown(why) => ("unknown", Some(why)),
        CheckOutcome::Errored(why) => ("error", Some(why)),
    }
}

fn check_json(result: &CheckResult) -> Value {
    let (status, reason) = check_status(&result.outcome);
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
