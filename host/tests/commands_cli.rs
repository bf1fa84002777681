//! The commands around `deploy`, end to end: `plan`, `status`, `history`, `rollback`,
//! `deploy --dry-run`, and a deploy stopped by SIGTERM. The real binary against the real local
//! kube-apiserver (kubelet stand-in) and Prometheus; `kubectl` is the independent witness.
//!
//! Needs the local environment: `tests/cluster/up`, then the variables of its `env` file.

#[path = "support/site.rs"]
mod site;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use site::{HOLDER, Site, command, deploy, deploy_command, finish, image_of};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `action` of each stage of a `plan --output json`.
fn actions(plan: &Value) -> Vec<String> {
    plan["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["action"]["action"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Resource versions of every stage's Deployment.
fn resource_versions(site: &Site) -> Vec<String> {
    site.stage_names()
        .iter()
        .map(|s| site.resource_version(s))
        .collect()
}

#[test]
fn plan_dry_run_status_and_history_say_what_is_and_would_be_and_change_nothing() {
    // Given three stages serving v1.0.0, the last behind a manual gate
    let site = Site::new("cmdread");
    // gprd's pre-check is the health check that `plan` and `status` run once per stage; the
    // test never enters gprd, so Prometheus' view of the new namespaces cannot block it.
    let config = site
        .config()
        .stage("gprd", "pre_checks = [\"health\"]")
        .write();
    let before = resource_versions(&site);

    // When v2.0.0 is planned, Then each stage says what a deploy would do, from what is live
    let ran = command(
        &config,
        &["plan"],
        &["--version", "v2.0.0", "--output", "json"],
    );
    assert_eq!(ran.code, 0, "{}", ran.said);
    let plan = json(&ran.stdout);
    assert_eq!(actions(&plan), ["deploy", "deploy", "await-approval"]);
    let first = &plan["stages"][0];
    assert_eq!(first["live"][0]["version"], "v1.0.0", "{first}");
    assert_eq!(first["action"]["rollback_to"], "v1.0.0");
    assert_eq!(first["lock"]["held"], false);
    assert_eq!(first["health"], Value::Array(vec![]), "no check configured");
    let gprd = &plan["stages"][2];
    assert_eq!(
        gprd["health"][0]["check"], "health",
        "the stage's health check ran once: {gprd}"
    );
    assert!(
        ["pass", "fail", "unknown"].contains(&gprd["health"][0]["status"].as_str().unwrap_or("")),
        "a verdict from the real Prometheus, not a plugin error: {gprd}"
    );
    assert_eq!(
        plan["stages"][2]["action"]["command"],
        format!(
            "tagship deploy --config {} --version v2.0.0 --approve gprd",
            config.display()
        )
    );

    // When it is a dry run, Then the server validates each apply and nothing changes
    let ran = deploy(&config, &["--version", "v2.0.0", "--dry-run"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(ran.said.contains("would apply v2.0.0"), "{}", ran.said);
    assert_eq!(
        resource_versions(&site),
        before,
        "a dry run changes nothing"
    );
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"));
    assert_eq!(site.history("gstg-cny"), Vec::<Value>::new());

    // When a downgrade is dry-run, Then it exits as the real run would: blocked, nothing changed
    let ran = deploy(&config, &["--version", "v0.9.0", "--dry-run"]);
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(ran.said.contains("newer than v0.9.0"), "{}", ran.said);

    // When v2.0.0 is deployed up to gstg, Then status shows it where it landed, and history
    // records it
    let ran = deploy(&config, &["--version", "v2.0.0", "--until", "gstg"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    let ran = command(&config, &["status"], &["--no-health", "--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    let status = json(&ran.stdout);
    let live: Vec<&str> = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["live"][0]["version"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(live, ["v2.0.0", "v2.0.0", "v1.0.0"]);
    assert_eq!(status["stages"][1]["last"]["action"], "deployed");
    assert_eq!(status["stages"][1]["live"][0]["rolled_out"], true);
    let text = command(&config, &["status"], &["--no-health"]);
    assert_eq!(text.code, 0, "{}", text.said);
    assert!(
        text.stdout.contains("gprd (environment gprd, manual gate)")
            && text.stdout.contains("gitlab-registry/registry: v2.0.0"),
        "{}",
        text.stdout
    );

    let ran = command(
        &config,
        &["history"],
        &["--stage", "gstg", "--output", "json"],
    );
    assert_eq!(ran.code, 0, "{}", ran.said);
    let history = json(&ran.stdout);
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{history}");
    assert_eq!(entries[0]["action"], "deployed");
    assert_eq!(entries[0]["version"], "v2.0.0");
    assert_eq!(entries[0]["previous"], "v1.0.0");
    assert_eq!(entries[0]["by"], HOLDER);

    // Then the plan now says there is nothing to do up to the gate
    let ran = command(
        &config,
        &["plan"],
        &["--version", "v2.0.0", "--no-health", "--output", "json"],
    );
    assert_eq!(
        actions(&json(&ran.stdout)),
        ["nothing", "nothing", "await-approval"]
    );

    // And a stage that does not exist is a usage error naming the stages
    let ran = command(&config, &["history"], &["--stage", "gstg-typo"]);
    assert_eq!(ran.code, 2, "{}", ran.said);
    assert!(ran.said.contains("gstg-cny, gstg, gprd"), "{}", ran.said);
}

#[test]
fn rollback_returns_a_stage_and_is_refused_below_the_post_migration_watermark() {
    // Given post-deployment migrations after gstg, and v2.0.0 deployed to the gstg environment
    let site = Site::new("cmdrb");
    let config = site
        .config()
        .post_migration(&["registry", "database", "migrate", "up"], Some("gstg"))
        .write();
    let ran = deploy(&config, &["--version", "v2.0.0", "--approve", "gprd"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.said
            .contains("post-deployment migrations of v2.0.0 done"),
        "{}",
        ran.said
    );

    // When gstg-cny is rolled back to v1.0.0, below the watermark, Then it is refused with the
    // reason (exit 6) and nothing changes
    let before = site.resource_version("gstg-cny");
    let ran = command(&config, &["rollback"], &["--stage", "gstg-cny"]);
    assert_eq!(ran.code, 6, "{}", ran.said);
    assert!(
        ran.said
            .contains("post-deployment migrations of v2.0.0 have run"),
        "{}",
        ran.said
    );
    assert!(ran.said.contains("forward-fix"), "{}", ran.said);
    assert_eq!(site.resource_version("gstg-cny"), before);
    assert_eq!(site.image("gstg-cny"), image_of("v2.0.0"));
    assert_eq!(site.lease_holder("gstg"), "", "the lock is released");

    // When forced, Then it rolls back and records it
    let ran = command(&config, &["rollback"], &["--stage", "gstg-cny", "--force"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"));
    site.wait_rolled_out("gstg-cny");
    let history = site.history("gstg-cny");
    let last = history.last().expect("history");
    assert_eq!(last["action"], "rolled-back", "{history:?}");
    assert_eq!(last["version"], "v1.0.0");
    assert_eq!(last["previous"], "v2.0.0");

    // When rolled back again without --to, Then it does not roll forward to the recorded v2.0.0
    let ran = command(&config, &["rollback"], &["--stage", "gstg-cny"]);
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(ran.said.contains("already rolled back"), "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"));

    // When gprd (another environment, no watermark) is rolled back, Then v1.0.0 serves there
    let ran = command(&config, &["rollback"], &["--stage", "gprd"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image("gprd"), image_of("v1.0.0"));
    site.wait_rolled_out("gprd");
    let annotations = site.annotations("gprd");
    assert_eq!(annotations["tagship.io/version"], "v1.0.0");
    assert_eq!(annotations["tagship.io/previous-version"], "v2.0.0");
}

#[test]
fn a_deploy_stopped_by_sigterm_releases_its_lock_and_a_rerun_finishes() {
    // Given a release that will not roll out before its deadline, so the run is mid-rollout
    // (fail_fast off: a crash loop is otherwise seen, and rolled back, within a second, and the
    // signal would race the end of the run)
    let site = Site::new("cmdterm");
    let config = site
        .config()
        .rollout_timeout("20s")
        .stage("gstg-cny", "fail_fast = false")
        .write();
    let started = Instant::now();
    let child = deploy_command(&config, &["--version", "v2.0.0-crashloop"])
        .spawn()
        .expect("start tagship");
    let deadline = started + Duration::from_mins(1);
    while site.image("gstg-cny") != image_of("v2.0.0-crashloop") {
        assert!(Instant::now() < deadline, "the deploy never applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        site.lease_holder_who("gstg"),
        HOLDER,
        "the run holds the lock"
    );
    assert!(
        site.lease_holder("gstg")
            .starts_with(&format!("{HOLDER}#run-")),
        "as who and which run: {}",
        site.lease_holder("gstg")
    );

    // When CI cancels the job (SIGTERM)
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let ran = finish(child, started);

    // Then it exits 1 at once, says how to finish (the same command, its configuration
    // included), and the lock is free for others
    assert_eq!(ran.code, 1, "{}", ran.said);
    let rerun = format!(
        "re-run `tagship deploy --config {} --version v2.0.0-crashloop` to finish it",
        config.display()
    );
    assert!(
        ran.said.contains("SIGTERM") && ran.said.contains(&rerun),
        "{rerun}\n{}",
        ran.said
    );
    assert_eq!(site.lease_holder("gstg"), "", "the lock was released");

    // When the same command runs again, Then it resumes, fails the rollout, and rolls back
    let ran = deploy(&config, &["--version", "v2.0.0-crashloop"]);
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(ran.said.contains("resuming"), "{}", ran.said);
    assert!(ran.said.contains("v1.0.0 serves again"), "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"));
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one run, then every report it wrote, read in turn"
)]
fn a_deploy_in_ci_writes_sections_and_the_json_markdown_and_dotenv_reports() {
    // Given three stages at v1.0.0
    let site = Site::new("cmdci");
    let config = site.config().write();
    let reports = site.dir().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let (json_path, md_path, env_path) = (
        reports.join("deploy.json"),
        reports.join("summary.md"),
        reports.join("deploy.env"),
    );
    let in_ci = |args: &[&str]| {
        let mut cmd = deploy_command(&config, args);
        cmd.env("CI", "true")
            .env(
                "CI_PIPELINE_URL",
                "https://gitlab.example.com/deploy/-/pipelines/7",
            )
            .arg("--json-report")
            .arg(&json_path)
            .arg("--markdown-report")
            .arg(&md_path)
            .arg("--dotenv")
            .arg(&env_path);
        site::run(&mut cmd)
    };

    // When v2.0.0 is deployed up to gstg in CI
    let ran = in_ci(&["--version", "v2.0.0", "--until", "gstg"]);
    assert_eq!(ran.code, 0, "{}", ran.said);

    // Then the log has a GitLab section per stage and per phase, opened and closed
    for name in [
        "tagship_gstg-cny",
        "tagship_gstg-cny_rollout",
        "tagship_gstg",
    ] {
        assert!(
            ran.stderr.contains(&format!(":{name}\r\x1b[0K"))
                && ran.stderr.contains("section_end:"),
            "section {name}: {}",
            ran.stderr
        );
    }
    let starts = ran.stderr.matches("section_start:").count();
    let ends = ran.stderr.matches("section_end:").count();
    assert_eq!(starts, ends, "every section is closed: {}", ran.stderr);

    // And the JSON report holds the outcome, each stage's result, the steps and events
    let report = json(&std::fs::read_to_string(&json_path).unwrap());
    assert_eq!(report["outcome"], "done");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["version"], "v2.0.0");
    assert_eq!(
        report["pipeline_url"],
        "https://gitlab.example.com/deploy/-/pipelines/7"
    );
    let results: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["deployed", "deployed", "not reached"]);
    assert!(report["stages"][0]["started_at"].is_string());
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stage"] == "gstg-cny" && s["message"] == "applying v2.0.0"),
        "{report}"
    );
    let kinds: Vec<&str> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"deploy-started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"deploy-succeeded"), "{kinds:?}");

    // And the Markdown summary has the table and a Mermaid timeline with a bar per phase
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.starts_with("## tagship: registry v2.0.0: done"), "{md}");
    assert!(md.contains("| gstg-cny | gstg | deployed |"), "{md}");
    assert!(md.contains("| gprd | gprd | not reached |"), "{md}");
    assert!(md.contains("```mermaid\ngantt\n"), "{md}");
    assert!(md.contains("    section gstg-cny\n"), "{md}");
    assert!(md.contains("    rollout :done, "), "{md}");

    // And the dotenv file tells downstream jobs how it went
    let env = std::fs::read_to_string(&env_path).unwrap();
    for line in [
        "TAGSHIP_OUTCOME=done",
        "TAGSHIP_EXIT_CODE=0",
        "TAGSHIP_VERSION=v2.0.0",
        "TAGSHIP_STAGE_REACHED=gstg",
        "TAGSHIP_DEPLOYED_STAGES=gstg-cny,gstg",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing: {env}");
    }

    // When a crash-looping release is rolled back, Then the reports say so
    let ran = in_ci(&["--version", "v3.0.0-crashloop"]);
    assert_eq!(ran.code, 1, "{}", ran.said);
    let report = json(&std::fs::read_to_string(&json_path).unwrap());
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["rolled_back_to"], "v2.0.0");
    assert_eq!(
        report["stages"][0]["result"],
        "failed, rolled back to v2.0.0"
    );
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.contains("    rollback :crit, "), "{md}");
    let env = std::fs::read_to_string(&env_path).unwrap();
    assert!(
        env.lines().any(|l| l == "TAGSHIP_OUTCOME=failed")
            && env.lines().any(|l| l == "TAGSHIP_EXIT_CODE=1")
            && env.lines().any(|l| l == "TAGSHIP_ROLLED_BACK_TO=v2.0.0"),
        "{env}"
    );
}

#[test]
fn a_rollback_stopped_by_sigterm_releases_its_lock() {
    // Given v2.0.0 live in gstg-cny, and a rollback to a release that will not roll out (and
    // is not failed at once: fail_fast off, as above)
    let site = Site::new("cmdrbterm");
    let config = site
        .config()
        .rollout_timeout("20s")
        .stage("gstg-cny", "fail_fast = false")
        .write();
    let ran = deploy(&config, &["--version", "v2.0.0", "--until", "gstg-cny"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    let started = Instant::now();
    let mut cmd = site::tagship(&["rollback", "--config"]);
    cmd.arg(&config)
        .args(["--stage", "gstg-cny", "--to", "v1.5.0-crashloop"]);
    let child = cmd.spawn().expect("start tagship");
    let deadline = started + Duration::from_mins(1);
    while site.image("gstg-cny") != image_of("v1.5.0-crashloop") {
        assert!(Instant::now() < deadline, "the rollback never applied");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(site.lease_holder_who("gstg"), HOLDER);

    // When it is stopped with SIGTERM, Then it exits 1, says so, and the lock is free
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let ran = finish(child, started);
    assert_eq!(ran.code, 1, "{}", ran.said);
    let again = format!(
        "run the same rollback again to finish it: `tagship rollback --config {} --stage gstg-cny --to v1.5.0-crashloop`",
        config.display()
    );
    assert!(
        ran.said.contains("interrupted by SIGTERM") && ran.said.contains(&again),
        "{again}\n{}",
        ran.said
    );
    assert_eq!(site.lease_holder("gstg"), "", "the lock was released");
}
