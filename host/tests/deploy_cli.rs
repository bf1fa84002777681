//! `tagship deploy` end to end, as CI runs it: the real binary, the real local kube-apiserver
//! with the kubelet stand-in, the real Prometheus. `kubectl` is the independent witness.
//!
//! Needs the local environment: `tests/cluster/up`, then the variables of its `env` file.

#[path = "support/site.rs"]
mod site;

use std::time::{Duration, Instant};

use site::{
    IMAGE, Site, StageSpec, deploy, eventually, image_of, kubectl_ok, prometheus_values,
    set_component_tag,
};

#[test]
fn a_release_walks_the_stages_stops_at_the_gate_and_a_rerun_changes_nothing() {
    // Given three stages serving v1.0.0, the last behind a manual gate
    let site = Site::new("e2ea");
    let config = site.config().write();

    // When v2.0.0 is deployed, Then it stops before gprd, awaiting approval, and says how to go
    // on: the command that was run, its configuration included, plus the approval
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    let go_on = format!(
        "continue with: tagship deploy --config {} --version v2.0.0 --approve gprd",
        config.display()
    );
    assert!(ran.said.contains(&go_on), "{go_on}\n{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v2.0.0"));
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    assert_eq!(site.image("gprd"), image_of("v1.0.0"));
    let sidecar = kubectl_ok(&[
        "get",
        "deployment",
        "gitlab-registry",
        "-n",
        &site.ns("gstg"),
        "-o",
        "jsonpath={.spec.template.spec.containers[1].image} {.spec.replicas}",
    ]);
    assert_eq!(sidecar, "busybox:1.36 2", "only the registry image changes");

    // When approved, Then gprd serves v2.0.0 too, with its audit annotations
    let ran = deploy(&config, &["--version", "v2.0.0", "--approve", "gprd"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image("gprd"), image_of("v2.0.0"));
    let annotations = site.annotations("gprd");
    assert_eq!(
        annotations.get("tagship.io/version").map(String::as_str),
        Some("v2.0.0"),
        "{annotations:?}"
    );
    assert_eq!(
        annotations
            .get("tagship.io/previous-version")
            .map(String::as_str),
        Some("v1.0.0"),
        "{annotations:?}"
    );
    let history = site.history("gprd");
    assert!(
        history
            .iter()
            .any(|h| h["action"] == "deployed" && h["version"] == "v2.0.0"),
        "{history:?}"
    );

    // When the same command runs again, Then nothing changes
    let before: Vec<String> = site
        .stage_names()
        .iter()
        .map(|s| site.resource_version(s))
        .collect();
    let ran = deploy(&config, &["--version", "v2.0.0", "--approve", "gprd"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(ran.said.contains("already serving v2.0.0"), "{}", ran.said);
    let after: Vec<String> = site
        .stage_names()
        .iter()
        .map(|s| site.resource_version(s))
        .collect();
    assert_eq!(before, after, "a re-run must not touch any Deployment");

    // When an older version is asked for, Then it is refused with nothing changed
    let ran = deploy(&config, &["--version", "v1.5.0"]);
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(ran.said.contains("--allow-downgrade"), "{}", ran.said);
}

#[test]
fn a_crashlooping_release_is_rolled_back_and_later_stages_are_untouched() {
    // With the new pods watched (the default), the first crash-looping pod fails the rollout
    let site = Site::new("e2eb");
    let config = site.config().write();
    let ran = deploy(&config, &["--version", "v2.0.0-crashloop"]);
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains("rollout failed: deployment `gitlab-registry` in cluster `local-1`: pod `gitlab-registry-")
            && ran.said.contains("container `configure` is in CrashLoopBackOff"),
        "{}",
        ran.said
    );
    assert!(ran.said.contains("v1.0.0 serves again"), "{}", ran.said);

    // Without them, the Deployment's progress deadline does, read as one sentence
    let deadline = site
        .config()
        .stage("gstg-cny", "fail_fast = false")
        .write_as("deadline.toml");
    let ran = deploy(&deadline, &["--version", "v2.0.1-crashloop"]);
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains("ProgressDeadlineExceeded: ReplicaSet") && !ran.said.contains(".;"),
        "{}",
        ran.said
    );
    assert!(!ran.said.contains("CrashLoopBackOff"), "{}", ran.said);
    assert!(ran.said.contains("v1.0.0 serves again"), "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"));
    site.wait_rolled_out("gstg-cny");
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
    assert_eq!(
        site.lease_holder("gstg"),
        "",
        "the lock is released after the failure"
    );
}

#[test]
fn an_errors_release_fails_its_bake_on_the_real_health_rule_and_is_rolled_back() {
    // Given a canary whose real health rule reads 1 (healthy) in Prometheus
    let site = Site::new("e2ec");
    let config = site
        .config()
        .bake(
            "gstg-cny",
            "checks = [\"health\"]\nduration = \"40s\"\ninterval = \"4s\"\ninitial_delay = \"2s\"",
        )
        .write();
    // The plugin's own query (see the site's configuration).
    let rule = format!(
        "min(gitlab_deployment_health:service{{namespace=\"{}\"}})",
        site.ns("gstg-cny")
    );
    assert!(
        eventually(Duration::from_secs(90), || prometheus_values(&rule)
            == [1.0]),
        "the health rule of a fresh v1.0.0 canary never read 1: {:?}",
        prometheus_values(&rule)
    );

    // When a release serving 20% errors is deployed
    let started = Instant::now();
    let ran = deploy(
        &config,
        &["--version", "v3.0.0-errors", "--until", "gstg-cny"],
    );

    // Then its bake fails, naming the query that read 0, and it is rolled back
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(ran.said.contains("bake failed"), "{}", ran.said);
    let failed = format!("health FAIL in local-1: `{rule}` = 0 does not satisfy `== 1`");
    assert!(ran.said.contains(&failed), "{failed}\n{}", ran.said);
    // labelled by the time since the bake began, its 2 s initial delay included (of 2 + 40 s):
    // the first round is not at `0s`
    assert!(
        ran.said.contains("s/42s: health FAIL in local-1") && !ran.said.contains("bake 0s/"),
        "{}",
        ran.said
    );
    assert!(ran.said.contains("v1.0.0 serves again"), "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"));
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));

    // And Prometheus itself read 0 for the canary's health rule while the release was live
    let window = started.elapsed().as_secs() + 2;
    let during = format!("min_over_time({rule}[{window}s:1s])");
    assert_eq!(
        prometheus_values(&during),
        [0.0],
        "{during}: the real health rule never read 0 during the deploy\n{}",
        ran.said
    );
}

#[test]
fn a_workload_that_names_no_container_gets_the_release_in_the_component_s_containers_only() {
    // Given stages whose workload names no container: the registry, its `configure` init
    // container of the same image, and a busybox sidecar
    let site = Site::new("allc");
    let config = site.config().write();
    let text = std::fs::read_to_string(&config).expect("read tagship.toml");
    assert!(
        !text.contains("containers ="),
        "the workload names no container"
    );

    // When v2.0.0 is deployed (up to the manual gate of gprd)
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);

    // Then the registry and its init container run it, the sidecar keeps its image, and gprd's
    // still run what they did
    let images = |stage: &str| {
        site.get_in(
            site.first_cluster(stage),
            stage,
            "jsonpath={.spec.template.spec.initContainers[*].image} {.spec.template.spec.containers[*].image}",
        )
    };
    let new = image_of("v2.0.0");
    for stage in ["gstg-cny", "gstg"] {
        assert_eq!(
            images(stage),
            format!("{new} {new} busybox:1.36"),
            "{stage}"
        );
    }
    let old = image_of("v1.0.0");
    assert_eq!(images("gprd"), format!("{old} {old} busybox:1.36"));

    // And naming the sidecar is refused before anything changes
    let sidecar = site
        .config()
        .containers(&["registry", "sidecar"])
        .write_as("sidecar.toml");
    let ran = deploy(&sidecar, &["--version", "v3.0.0"]);
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(
        ran.said.contains("has container `sidecar` running `busybox:1.36`, not the component's image `registry.example.com/registry`"),
        "{}",
        ran.said
    );
    assert_eq!(images("gstg-cny"), format!("{new} {new} busybox:1.36"));
}

#[test]
fn a_cluster_whose_version_cannot_be_read_is_not_overwritten_without_allow_downgrade() {
    // Given a stage over two clusters: local-1 serves v1.0.0, local-2 an image whose tag is not
    // a version (`latest`), which may be anything, newer too
    let site = Site::builder("unreadable")
        .stages(vec![
            StageSpec::auto("gstg-cny", "gstg").in_clusters(&["local-1", "local-2"]),
        ])
        .deployment_in(|context, d| {
            if context == "local-2" {
                set_component_tag(d, "latest");
            }
        })
        .create();
    let config = site.config().write();
    let before = site.resource_version_in("local-2", "gstg-cny");

    // When v2.0.0 is deployed, Then it is refused before any change, naming what it cannot read
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(
        ran.said.contains(&format!(
            "`gitlab-registry/registry` in cluster `local-2` runs `{IMAGE}:latest`, whose tags are not versions"
        )) && ran.said.contains("--allow-downgrade"),
        "{}",
        ran.said
    );
    assert_eq!(site.image_in("local-1", "gstg-cny"), image_of("v1.0.0"));
    assert_eq!(site.resource_version_in("local-2", "gstg-cny"), before);

    // When the deployer says it may replace it, Then both clusters run v2.0.0
    let ran = deploy(&config, &["--version", "v2.0.0", "--allow-downgrade"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image_in("local-2", "gstg-cny"), image_of("v2.0.0"));
}
