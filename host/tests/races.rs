//! Races: several runners on the same stages at once, and a runner whose lock is taken over
//! while it is frozen. The real binary against the real local kube-apiserver; `kubectl` and the
//! stages' history are the witnesses.
//!
//! Needs the local environment: `tests/cluster/up`, then the variables of its `env` file.

#[path = "support/site.rs"]
mod site;

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use site::{Site, command, deploy_command, eventually, finish, image_of};

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

/// The field managers that own the Deployment's fields, by name.
fn managers(site: &Site, stage: &str) -> Vec<String> {
    let text = site::kubectl_ok_in(
        "local-1",
        &[
            "get",
            "deployment",
            site::DEPLOYMENT,
            "-n",
            &site.ns(stage),
            "--show-managed-fields",
            "-o",
            "json",
        ],
    );
    let deployment: Value = serde_json::from_str(&text).expect("a Deployment");
    deployment["metadata"]["managedFields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| f["manager"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn five_runners_at_once_never_interleave_and_the_newest_version_ends_live() {
    // Given three stages at v1.0.0 and five runners started together, two with the same version
    let site = Site::new("race");
    let config = site.config().lock_wait("150s").write();
    let versions = ["v2.0.0", "v2.0.0", "v2.1.0", "v2.2.0", "v3.0.0"];
    let started = Instant::now();
    let children: Vec<(String, &str, Child)> = versions
        .iter()
        .enumerate()
        .map(|(i, version)| {
            let holder = format!("runner-{i}");
            let child = deploy_command(&config, &["--version", version, "--approve", "gprd"])
                .env("TAGSHIP_HOLDER", &holder)
                .env("CI_PIPELINE_ID", format!("{}", 1000 + i))
                .spawn()
                .expect("start tagship");
            (holder, *version, child)
        })
        .collect();
    let runs: Vec<(String, &str, site::Ran)> = children
        .into_iter()
        .map(|(holder, version, child)| (holder, version, finish(child, started)))
        .collect();

    // Then every runner finished: deployed (0), or refused what is now a downgrade (3); none
    // failed, none gave up on the lock
    let mut waited = 0;
    for (holder, version, ran) in &runs {
        assert!(
            ran.code == 0 || ran.code == 3,
            "{holder} ({version}) exited {}:\n{}",
            ran.code,
            ran.said
        );
        if ran.code == 3 {
            assert!(
                ran.said.contains("--allow-downgrade"),
                "{holder} was refused for the right reason:\n{}",
                ran.said
            );
        }
        if ran.said.contains("is held by `runner-") {
            waited += 1;
        }
    }
    assert!(
        waited >= 1,
        "with five runners at once, someone waited and was told who held the lock"
    );

    // And the newest version serves in every stage, rolled out
    for stage in site.stage_names() {
        assert_eq!(site.image(&stage), image_of("v3.0.0"), "{stage}");
        site.wait_rolled_out(&stage);
        assert_eq!(
            managers(&site, &stage)
                .iter()
                .filter(|m| m.as_str() != "kubectl-client-side-apply"
                    && m.as_str() != "kube-controller-manager"
                    && m.as_str() != "kubectl")
                .cloned()
                .collect::<Vec<_>>(),
            ["tagship"],
            "only tagship's field manager changed {stage}"
        );
    }

    // And each stage's history only ever moves forward: nothing older overwrote anything newer
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for stage in site.stage_names() {
        let history = site.history(&stage);
        let deployed: Vec<&Value> = history
            .iter()
            .filter(|h| h["action"] == "deployed")
            .collect();
        assert!(!deployed.is_empty(), "{stage}: {history:?}");
        let versions: Vec<semver::Version> = deployed
            .iter()
            .map(|h| {
                semver::Version::parse(h["version"].as_str().unwrap().trim_start_matches('v'))
                    .unwrap()
            })
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{stage} went backwards or deployed a version twice: {history:?}"
        );
        order.insert(
            stage.clone(),
            deployed
                .iter()
                .map(|h| h["deploy_id"].as_str().unwrap().to_owned())
                .collect(),
        );
    }
    // And the two stages of one environment saw the runs in the same order (one lock, held
    // across both stages): the runs did not interleave there
    assert_eq!(
        order["gstg-cny"], order["gstg"],
        "gstg-cny and gstg share the gstg lock: {order:?}"
    );
    assert_eq!(site.lease_holder("gstg"), "", "the lock is free at the end");
    eprintln!(
        "{}",
        json!({"runners": runs.len(), "waited": waited, "order": order,
               "exits": runs.iter().map(|(_, v, r)| format!("{v}:{}", r.code)).collect::<Vec<_>>()})
    );
}

#[test]
fn a_runner_whose_lock_was_taken_over_while_it_was_frozen_stops_and_says_so() {
    // Given a deploy whose rollout takes a while (pods become available only after 40 s)
    let site = Site::builder("racesteal")
        .deployment(|d| {
            d["spec"]["minReadySeconds"] = json!(40);
            d["spec"]["progressDeadlineSeconds"] = json!(300);
        })
        .create();
    let config = site.config().lock_ttl("15s").write();
    let started = Instant::now();
    let child = deploy_command(&config, &["--version", "v2.0.0", "--until", "gstg-cny"])
        .spawn()
        .expect("start tagship");
    assert!(
        eventually(Duration::from_mins(1), || site.image("gstg-cny")
            == image_of("v2.0.0")),
        "the deploy applied"
    );

    // When the runner is frozen (SIGSTOP) for longer than the lock's TTL, and another deployer
    // takes the expired lock
    signal(&child, "STOP");
    std::thread::sleep(Duration::from_secs(17));
    let thief = command(
        &config,
        &["lock", "acquire"],
        &[
            "--stage",
            "gstg-cny",
            "--holder",
            "thief",
            "--reason",
            "took over an expired lock",
            "--wait",
            "30s",
        ],
    );
    assert_eq!(thief.code, 0, "{}", thief.said);
    signal(&child, "CONT");
    let ran = finish(child, started);

    // Then the runner notices at its next renewal, stops changing the cluster, and says so
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains("was taken over by `thief`")
            && ran.said.contains("stopped changing the cluster"),
        "{}",
        ran.said
    );
    assert_eq!(
        site.image("gstg-cny"),
        image_of("v2.0.0"),
        "no rollback was applied after the lock was lost"
    );
    assert_eq!(
        site.annotations("gstg-cny")["tagship.io/version"],
        "v2.0.0",
        "nothing of tagship's changed after the lock was lost"
    );
    assert_eq!(
        site.lease_holder("gstg"),
        "thief",
        "someone else's lock is never released"
    );
    let released = command(
        &config,
        &["lock", "release"],
        &["--stage", "gstg-cny", "--holder", "thief"],
    );
    assert_eq!(released.code, 0, "{}", released.said);
}
