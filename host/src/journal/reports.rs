//! The reports written from a run's record: JSON, a Markdown summary with a Mermaid gantt
//! timeline (GitLab renders it), and a dotenv file for downstream jobs.

use super::*;

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

pub(super) fn hms(t: SystemTime) -> String {
    rfc3339(t).get(11..19).unwrap_or("").to_owned()
}

pub(super) fn mermaid_time(t: SystemTime) -> String {
    rfc3339(t).trim_end_matches('Z').replace('T', " ")
}

/// Keeps a table cell in one cell: no pipes, no line breaks.
pub(super) fn escape_md(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}
