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
