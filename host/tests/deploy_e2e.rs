//! `tagship deploy` end to end in the harder situations: a failing pre-deployment migration,
//! someone else's lock, a run killed with SIGKILL mid-rollout, notifications for whole runs, and
//! stages spanning two clusters. The real binary against the real local kube-apiserver (with the
//! kubelet stand-in) and the real Prometheus; `kubectl` is the independent witness.
//!
//! Needs the local environment with two clusters: `tests/cluster/up --clusters 2`, then the
//! variables of its `env` file.

#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/site.rs"]
mod site;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use http_server::{Reply, TestServer};
use site::{
    Background, Site, command, contexts, deploy, deploy_command, eventually, image_of, kubectl_in,
    kubectl_ok_in,
};

/// `(image, resourceVersion)` of every stage's Deployment in every cluster of it.
fn snapshot(site: &Site) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for stage in site.stage_names() {
        for cluster in site.clusters(&stage) {
            out.push((
                stage.clone(),
                cluster.clone(),
                site.image_in(cluster, &stage),
                site.resource_version_in(cluster, &stage),
            ));
        }
    }
    out
}

/// The pre-deployment migration Jobs in `stage`'s namespace: `(image, Failed condition,
/// Complete condition)` per Job.
fn migration_jobs(site: &Site, stage: &str) -> Vec<(String, String, String)> {
    let out = kubectl_ok_in(
        "local-1",
        &[
            "get",
            "jobs",
            "-n",
            &site.ns(stage),
            "-l",
            "tagship.io/migration=pre",
            "-o",
            "json",
        ],
    );
    let list: Value = serde_json::from_str(&out).expect("job list");
    let condition = |job: &Value, kind: &str| {
        job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .and_then(|c| c["status"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|job| {
            (
                job["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                condition(job, "Failed"),
                condition(job, "Complete"),
            )
        })
        .collect()
}

#[test]
fn a_failing_pre_deployment_migration_stops_the_stage_with_nothing_applied() {
    // Given three stages serving v1.0.0 and pre-deployment migrations configured
    let site = Site::new("e2emig");
    let config = site
        .config()
        .pre_migration(&[
            "registry",
            "database",
            "migrate",
            "up",
            "--skip-post-deployment",
        ])
        .write();
    let before = snapshot(&site);

    // When a release whose migrations fail is deployed (the stand-in fails a Job pod whose image
    // tag says `fail`)
    let ran = deploy(&config, &["--version", "v2.0.0-fail", "--approve", "gprd"]);

    // Then the run fails, says the migration failed, and nothing was applied anywhere
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains("pre-deployment migrations failed"),
        "{}",
        ran.said
    );
    assert_eq!(
        snapshot(&site),
        before,
        "no Deployment may change\n{}",
        ran.said
    );
    let jobs = migration_jobs(&site, "gstg-cny");
    assert_eq!(
        jobs,
        [(image_of("v2.0.0-fail"), "True".to_owned(), String::new())],
        "the migration ran as a Job with the target image, and failed"
    );
    let history = site.history("gstg-cny");
    assert!(
        !history.iter().any(|h| h["action"] == "deployed"),
        "{history:?}"
    );
    assert_eq!(site.lease_holder("gstg"), "", "the lock is released");

    // When a release whose migrations pass is deployed, Then the same stages go through: the
    // failure above was the migration's
    let ran = deploy(&config, &["--version", "v2.0.0", "--until", "gstg"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v2.0.0"));
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    assert!(
        ran.said.contains("running pre-deployment migrations"),
        "{}",
        ran.said
    );
    assert_eq!(
        migration_jobs(&site, "gstg-cny"),
        [],
        "a finished Job is cleaned up, and the failed one it replaced too"
    );
    assert!(
        migration_jobs(&site, "gstg").is_empty(),
        "pre-deployment migrations run in the first stage of an environment only"
    );
}

#[test]
fn another_holders_lock_makes_deploy_wait_name_the_holder_time_out_and_go_on_once_released() {
    // Given the environment's lock taken by another deployer
    let site = Site::new("e2elock");
    let config = site.config().lock_wait("5s").write();
    let ran = command(
        &config,
        &["lock", "acquire"],
        &[
            "--stage",
            "gstg",
            "--holder",
            "someone",
            "--reason",
            "app deploy in progress",
            "--ttl",
            "5m",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.said);
    let before = snapshot(&site);

    // When a deploy waits up to 5 s for it
    let ran = deploy(&config, &["--version", "v2.0.0", "--until", "gstg"]);

    // Then it names the holder and why, gives up with the lock-timeout code, and changed nothing
    assert_eq!(ran.code, 4, "{}", ran.said);
    assert!(ran.took >= Duration::from_secs(5), "{:?}", ran.took);
    assert!(
        ran.said.contains("`someone`") && ran.said.contains("app deploy in progress"),
        "{}",
        ran.said
    );
    assert_eq!(snapshot(&site), before, "{}", ran.said);
    assert_eq!(site.lease_holder("gstg"), "someone");

    // When a deploy that waits longer is running and the holder releases the lock
    let patient = site.config().lock_wait("3m").write_as("patient.toml");
    let mut waiting = Background::spawn(&mut deploy_command(
        &patient,
        &["--version", "v2.0.0", "--until", "gstg"],
    ));
    std::thread::sleep(Duration::from_secs(4));
    assert!(waiting.is_running(), "the deploy waits for the lock");
    assert_eq!(snapshot(&site), before, "nothing changes while it waits");
    let released = command(
        &config,
        &["lock", "release"],
        &["--stage", "gstg", "--holder", "someone"],
    );
    assert_eq!(released.code, 0, "{}", released.said);

    // Then it takes the lock and deploys
    let ran = waiting.finish();
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(ran.said.contains("`someone`"), "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v2.0.0"));
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    assert_eq!(site.image("gprd"), image_of("v1.0.0"));
    assert_eq!(site.lease_holder("gstg"), "", "released at the end");
}

#[test]
fn a_deploy_killed_mid_rollout_is_finished_by_running_the_same_command_again() {
    // Given stages whose pods count as available only 5 s after they are Ready, so a rollout of
    // two replicas (one new pod at a time) takes over ten seconds
    let site = Site::builder("e2ekill")
        .deployment(|d| {
            d["spec"]["minReadySeconds"] = json!(5);
            d["spec"]["progressDeadlineSeconds"] = json!(120);
        })
        .create();
    let config = site.config().lock_ttl("20s").lock_wait("90s").write();
    let args = ["--version", "v2.0.0", "--approve", "gprd"];
    // Both runs are the same CI job (a retry): the same pipeline and job name
    let ci_job = |mut cmd: std::process::Command| {
        cmd.env("CI_PIPELINE_ID", "4242")
            .env("CI_JOB_NAME", "deploy:gstg");
        cmd
    };

    // When the deploy is killed with SIGKILL once the canary has the new image applied but its
    // rollout is not complete
    let mut run = Background::spawn(&mut ci_job(deploy_command(&config, &args)));
    let mid_rollout = eventually(Duration::from_mins(1), || {
        site.image("gstg-cny") == image_of("v2.0.0") && !site.rollout_in("local-1", "gstg-cny").0
    });
    assert!(
        run.is_running(),
        "the deploy ended before it could be killed"
    );
    let killed = run.kill();
    assert!(
        mid_rollout,
        "never saw the canary mid-rollout\n{}",
        killed.said
    );
    let (complete, words) = site.rollout_in("local-1", "gstg-cny");
    assert!(
        !complete,
        "killed mid-rollout, kubectl says: {words}\n{}",
        killed.said
    );
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
    assert_eq!(
        site.lease_holder_who("gstg"),
        site::HOLDER,
        "a killed run cannot release its lock"
    );

    assert_eq!(
        site.lease_holder("gstg"),
        format!("{}#pipeline-4242/deploy:gstg", site::HOLDER),
        "a CI run is its pipeline and job"
    );

    // Then the same command again, in the same job, takes its own lock over at once and
    // finishes the job
    let ran = site::run(&mut ci_job(deploy_command(&config, &args)));
    assert!(!ran.said.contains("waiting up to"), "{}", ran.said);
    assert_eq!(
        ran.code, 0,
        "{}\n--- killed run:\n{}",
        ran.said, killed.said
    );
    assert!(ran.said.contains("resuming"), "{}", ran.said);
    for stage in site.stage_names() {
        assert_eq!(site.image(&stage), image_of("v2.0.0"), "{stage}");
        let (complete, words) = site.rollout_in("local-1", &stage);
        assert!(complete, "{stage}: {words}");
        let history = site.history(&stage);
        assert!(
            history
                .iter()
                .any(|h| h["action"] == "deployed" && h["version"] == "v2.0.0"),
            "{stage}: {history:?}"
        );
    }
    assert_eq!(
        site.annotations("gstg-cny")
            .get("tagship.io/previous-version")
            .map(String::as_str),
        Some("v1.0.0"),
        "the resumed run still knows what it replaced"
    );
    assert_eq!(site.lease_holder("gstg"), "");
    assert_eq!(site.lease_holder("gprd"), "");
}

/// One notification as the receiver got it.
#[derive(Debug)]
struct Heard {
    kind: String,
    stage: String,
    version: String,
    deploy_id: String,
    delivery: String,
}

/// Every event the receiver got, in the order it got them.
fn heard(receiver: &TestServer) -> Vec<Heard> {
    receiver
        .seen()
        .iter()
        .map(|seen| {
            assert_eq!(
                (seen.method.as_str(), seen.path.as_str()),
                ("POST", "/hook")
            );
            let body: Value = serde_json::from_slice(&seen.body).expect("a JSON event");
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            Heard {
                kind: text(&body["kind"]),
                stage: text(&body["context"]["stage"]),
                version: text(&body["context"]["version"]),
                deploy_id: text(&body["deploy_id"]),
                delivery: seen
                    .header("x-tagship-delivery")
                    .unwrap_or_default()
                    .to_owned(),
            }
        })
        .collect()
}

#[test]
fn notifications_reach_a_webhook_once_per_event_in_order_for_whole_runs() {
    // Given a webhook receiver on loopback and every stage notifying it
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(TestServer::start(|_| Reply::text(204, "")));
    // and a second one that only hears what should page someone (`events`)
    let pager = runtime.block_on(TestServer::start(|_| Reply::text(204, "")));
    let site = Site::new("e2enote");
    let pager_url = format!("{}/hook", pager.url());
    let config = site
        .config()
        .webhook("hook", &format!("{}/hook", receiver.url()))
        .toml(&format!(
            "[plugins.pager]\nsource = \"builtin:webhook-notify\"\nallow_hosts = [\"{}\"]\nconfig = {{ url = \"{pager_url}\" }}\nevents = [\"deploy-failed\", \"rollback-started\"]\n",
            pager_url.trim_start_matches("http://").trim_end_matches("/hook")
        ))
        .notify("pager")
        .write();

    // When v2.0.0 goes through every stage (stopping at the gate, then approved), and then a
    // crash-looping v3.0.0 is rolled back
    let runs = [
        (vec!["--version", "v2.0.0"], 0, "v2.0.0"),
        (
            vec!["--version", "v2.0.0", "--approve", "gprd"],
            0,
            "v2.0.0",
        ),
        (vec!["--version", "v3.0.0-crashloop"], 1, "v3.0.0-crashloop"),
    ];
    let mut said = String::new();
    for (args, code, _) in &runs {
        let ran = deploy(&config, args);
        assert_eq!(ran.code, *code, "{args:?}\n{}", ran.said);
        said.push_str(&ran.said);
    }
    assert_eq!(site.image("gprd"), image_of("v2.0.0"));
    assert_eq!(site.image("gstg-cny"), image_of("v2.0.0"));

    // Then the receiver heard each event once, in order
    let heard = heard(&receiver);
    let stage_event = |k: &str| k.starts_with("stage-") || k.starts_with("rollback-");
    let sequence: Vec<String> = heard
        .iter()
        .map(|h| {
            if stage_event(&h.kind) {
                format!("{}@{}", h.kind, h.stage)
            } else {
                h.kind.clone()
            }
        })
        .collect();
    let expected = [
        // v2.0.0, stopping at the gate
        "deploy-started",
        "stage-started@gstg-cny",
        "stage-succeeded@gstg-cny",
        "stage-started@gstg",
        "stage-succeeded@gstg",
        "awaiting-approval",
        // v2.0.0 approved: gstg-cny and gstg are already there
        "deploy-started",
        "stage-started@gprd",
        "stage-succeeded@gprd",
        "deploy-succeeded",
        // v3.0.0-crashloop, rolled back in the canary
        "deploy-started",
        "stage-started@gstg-cny",
        "stage-failed@gstg-cny",
        "rollback-started@gstg-cny",
        "rollback-succeeded@gstg-cny",
        "deploy-failed",
    ];
    assert_eq!(sequence, expected, "{heard:#?}\n{said}");

    // And each event belongs to its run and was delivered once
    let runs_heard: Vec<&[Heard]> = [0..6, 6..10, 10..16]
        .into_iter()
        .map(|r| &heard[r])
        .collect();
    let mut ids = BTreeSet::new();
    for (events, (_, _, version)) in runs_heard.iter().zip(&runs) {
        let id = &events[0].deploy_id;
        assert!(!id.is_empty(), "{events:#?}");
        assert!(
            ids.insert(id.clone()),
            "a new deploy id per run: {heard:#?}"
        );
        for h in *events {
            assert_eq!(&h.deploy_id, id, "{heard:#?}");
            assert_eq!(h.version, *version, "{heard:#?}");
        }
    }
    let deliveries: BTreeSet<&str> = heard.iter().map(|h| h.delivery.as_str()).collect();
    assert_eq!(
        deliveries.len(),
        heard.len(),
        "no delivery twice: {heard:#?}"
    );
    // And the pager heard only the kinds it asked for
    let pager_heard: Vec<String> = self::heard(&pager)
        .iter()
        .map(|h| format!("{}@{}", h.kind, h.stage))
        .collect();
    assert_eq!(
        pager_heard,
        ["rollback-started@gstg-cny", "deploy-failed@gstg-cny"],
        "a run's failure names the stage it stopped in: {said}"
    );
    drop(receiver);
    drop(pager);
    drop(runtime);
}

#[test]
fn stages_spanning_two_clusters_get_the_release_in_both_and_are_rolled_back_in_both() {
    assert!(
        contexts().len() >= 2,
        "this test needs two clusters: tests/cluster/up --clusters 2 (TAGSHIP_CONTEXTS={:?})",
        contexts()
    );
    // Given every stage in local-1 and local-2, both serving v1.0.0
    let site = Site::builder("e2etwo")
        .clusters(&["local-1", "local-2"])
        .create();
    let config = site.config().write();
    for stage in site.stage_names() {
        assert_eq!(site.clusters(&stage), ["local-1", "local-2"]);
        for cluster in site.clusters(&stage) {
            assert_eq!(site.image_in(cluster, &stage), image_of("v1.0.0"));
        }
    }

    // When v2.0.0 is deployed through every stage
    let ran = deploy(&config, &["--version", "v2.0.0", "--approve", "gprd"]);

    // Then it serves in both clusters of every stage, rolled out, with tagship's annotations
    assert_eq!(ran.code, 0, "{}", ran.said);
    for stage in site.stage_names() {
        for cluster in site.clusters(&stage) {
            assert_eq!(
                site.image_in(cluster, &stage),
                image_of("v2.0.0"),
                "{stage} in {cluster}"
            );
            let (complete, words) = site.rollout_in(cluster, &stage);
            assert!(complete, "{stage} in {cluster}: {words}");
            let version = site.get_in(
                cluster,
                &stage,
                "jsonpath={.metadata.annotations.tagship\\.io/version}",
            );
            assert_eq!(version, "v2.0.0", "{stage} in {cluster}");
        }
    }
    let lease_in_second = kubectl_in(
        "local-2",
        &["get", "lease", "tagship-gstg", "-n", &site.lock_namespace()],
    );
    assert!(
        !lease_in_second.status.success(),
        "the lock lives in the environment's first cluster only"
    );

    // When a crash-looping release is deployed
    let before = snapshot(&site);
    let ran = deploy(&config, &["--version", "v3.0.0-crashloop"]);

    // Then it was applied in both clusters of the canary, and rolled back in both
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(ran.said.contains("v2.0.0 serves again"), "{}", ran.said);
    // naming the cluster and the pod that could not run
    assert!(
        ran.said.contains("in cluster `local-")
            && ran.said.contains(": pod `gitlab-registry-")
            && ran.said.contains("is in CrashLoopBackOff"),
        "{}",
        ran.said
    );
    let canary = site.ns("gstg-cny");
    for cluster in ["local-1", "local-2"] {
        let replica_sets = kubectl_ok_in(
            cluster,
            &[
                "get",
                "replicasets",
                "-n",
                &canary,
                "-o",
                "jsonpath={.items[*].spec.template.spec.containers[0].image}",
            ],
        );
        assert!(
            replica_sets.contains(&image_of("v3.0.0-crashloop")),
            "the release reached {cluster}: {replica_sets}"
        );
        assert_eq!(
            site.image_in(cluster, "gstg-cny"),
            image_of("v2.0.0"),
            "rolled back in {cluster}"
        );
        assert!(
            eventually(Duration::from_mins(1), || site
                .rollout_in(cluster, "gstg-cny")
                .0),
            "v2.0.0 serves again in {cluster}"
        );
    }
    // And the later stages were not touched in either cluster
    let untouched: Vec<_> = before
        .iter()
        .filter(|(stage, ..)| stage != "gstg-cny")
        .cloned()
        .collect();
    let after: Vec<_> = snapshot(&site)
        .into_iter()
        .filter(|(stage, ..)| stage != "gstg-cny")
        .collect();
    assert_eq!(after, untouched);
}

#[test]
fn a_bake_check_whose_request_breaks_every_bound_fails_and_the_runner_rolls_back_and_tells() {
    // Given a canary baked by a plugin that sends 24,600 request headers (before the sandbox
    // bounded requests, this panicked inside the `http` crate and killed the runner mid-stage),
    // and a webhook receiver for every stage
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(TestServer::start(|_| Reply::text(204, "")));
    let site = Site::new("e2ehostile");
    let guest = format!("{}/tp_hostile_request.wasm", env!("TAGSHIP_GUESTS_DIR"));
    let config = site
        .config()
        .webhook("hook", &format!("{}/hook", receiver.url()))
        .toml(&format!(
            "[plugins.hostile]\nsource = \"{guest}\"\nconfig = {{ headers = \"24600\" }}\n"
        ))
        .bake(
            "gstg-cny",
            "checks = [\"hostile\"]\nduration = \"6s\"\ninterval = \"1s\"\nfailure_limit = 1",
        )
        .write();

    // When v2.0.0 is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then the check failed with the plugin's error, the canary was rolled back, the run ended
    // as a failed deploy (not a crash), the lock is free, and the receiver heard it all
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains("invalid request") && ran.said.contains("24600 request headers"),
        "{}",
        ran.said
    );
    assert!(!ran.said.contains("panicked at"), "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"));
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
    assert_eq!(site.lease_holder("gstg"), "", "the lock is released");
    let sequence: Vec<String> = heard(&receiver)
        .iter()
        .map(|h| format!("{}@{}", h.kind, h.stage))
        .collect();
    assert_eq!(
        sequence,
        [
            "deploy-started@",
            "stage-started@gstg-cny",
            "stage-failed@gstg-cny",
            "rollback-started@gstg-cny",
            "rollback-succeeded@gstg-cny",
            "deploy-failed@gstg-cny",
        ],
        "{}",
        ran.said
    );
    drop(receiver);
    drop(runtime);
}
