//! The state a deploy leaves the clusters in, when something is off: an apply refused by one of
//! a stage's clusters is rolled back in the others (never two versions in one stage), a paused
//! Deployment is refused before any change, and no path moves a stage below the post-deployment
//! migrations of its environment without `--force`. The real binary against the real local
//! kube-apiserver (one cluster through the fault proxy where a fault is needed); `kubectl` is
//! the witness.
//!
//! Needs the local environment with two clusters (`tests/cluster/up --clusters 2`, variables of
//! its `env` file).

#[path = "support/site.rs"]
mod site;

use std::path::PathBuf;

use tagship_tests::fault_proxy::{Fault, FaultProxy, Match, Rule};

use site::{Site, StageSpec, command, deploy, image_of, kubectl_ok};

#[test]
fn an_apply_refused_by_one_cluster_is_rolled_back_in_the_other_recorded_and_told() {
    // Given production over local-1 and local-2, local-2 reached through a proxy whose API
    // server refuses every apply (422)
    let site = Site::builder("stpart")
        .stages(vec![
            StageSpec::auto("gprd", "gprd").in_clusters(&["local-1", "local-2"]),
        ])
        .create();
    let source = PathBuf::from(site::env("TAGSHIP_KUBECONFIG"));
    let proxy = FaultProxy::start(&source, "local-2").expect("start the fault proxy");
    let kubeconfig = site.dir().join("kubeconfig-local-2-refusing");
    proxy
        .kubeconfig_for(&source, "local-2", &kubeconfig)
        .expect("write the proxied kubeconfig");
    let refused = proxy.inject(Rule::new(
        Match::new("PATCH", &["/deployments/"]),
        Fault::status(422),
        usize::MAX,
    ));
    let config = site.config().kubeconfig(&kubeconfig).write();

    // When v2.0.0 is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then local-1 took it, local-2 refused it, and the stage was rolled back: both clusters
    // serve v1.0.0, the failure and the rollback are in the history, and it was said
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(proxy.injected(refused) > 0, "{}", ran.said);
    assert!(ran.said.contains("apply failed"), "{}", ran.said);
    assert!(
        ran.said.contains("rolled back: serving v1.0.0 again"),
        "{}",
        ran.said
    );
    for cluster in ["local-1", "local-2"] {
        assert_eq!(
            site.image_in(cluster, "gprd"),
            image_of("v1.0.0"),
            "{cluster}"
        );
        assert!(
            site::eventually(std::time::Duration::from_mins(1), || site
                .rollout_in(cluster, "gprd")
                .0),
            "{cluster} rolled out"
        );
    }
    let history = site.history("gprd");
    assert!(
        history
            .iter()
            .any(|h| h["action"] == "rolled-back" && h["version"] == "v1.0.0"),
        "{history:?}"
    );
}

#[test]
fn a_paused_deployment_is_refused_before_any_change_naming_how_to_resume_it() {
    // Given a stage whose Deployment someone paused
    let site = Site::builder("stpause")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create();
    let ns = site.ns("gstg");
    kubectl_ok(&["rollout", "pause", "deployment/gitlab-registry", "-n", &ns]);
    let config = site.config().write();
    let before = site.resource_version("gstg");

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then it is blocked at once (not after a rollout timeout), saying it is paused and how to
    // resume it, with nothing changed and no lock taken
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(
        ran.took < std::time::Duration::from_secs(20),
        "{:?}",
        ran.took
    );
    assert!(
        ran.said.contains("is paused")
            && ran.said.contains(&format!(
                "kubectl --context local-1 -n {ns} rollout resume deployment/gitlab-registry"
            )),
        "{}",
        ran.said
    );
    assert_eq!(site.resource_version("gstg"), before);
    assert!(!ran.said.contains("holding the lock"), "{}", ran.said);

    // And `plan` says the run would be refused there
    let plan = command(&config, &["plan"], &["--version", "v2.0.0", "--no-health"]);
    assert!(
        plan.stdout
            .contains("refused: deployment `gitlab-registry`"),
        "{}",
        plan.said
    );
}

#[test]
fn no_path_moves_a_stage_below_its_post_deployment_migrations_without_force() {
    // Given v2.0.0 deployed with its post-deployment migrations (the watermark)
    let site = Site::builder("stmark")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create();
    let config = site
        .config()
        .post_migration(&["registry", "database", "migrate", "up"], None)
        .write();
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.said
            .contains("post-deployment migrations of v2.0.0 done"),
        "{}",
        ran.said
    );

    // When an older version is deployed with --allow-downgrade, as rolled back to
    let downgrade = deploy(&config, &["--version", "v1.5.0", "--allow-downgrade"]);
    let rollback = command(
        &config,
        &["rollback"],
        &["--stage", "gstg", "--to", "v1.5.0"],
    );

    // Then both are refused alike (exit 6, a human must act), with nothing changed
    for ran in [&downgrade, &rollback] {
        assert_eq!(ran.code, 6, "{}", ran.said);
        assert!(
            ran.said.contains("post-deployment migrations of v2.0.0"),
            "{}",
            ran.said
        );
        assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    }
    assert!(downgrade.said.contains("--force"), "{}", downgrade.said);

    // When forced, Then the downgrade goes through, saying so
    let forced = deploy(
        &config,
        &["--version", "v1.5.0", "--allow-downgrade", "--force"],
    );
    assert_eq!(forced.code, 0, "{}", forced.said);
    assert!(
        forced.said.contains("--force: deploying v1.5.0 below"),
        "{}",
        forced.said
    );
    assert_eq!(site.image("gstg"), image_of("v1.5.0"));
}

#[test]
fn drift_by_another_field_manager_is_named_by_status_plan_and_deploy_which_applies_again() {
    // Given v2.0.0 deployed, then the chart's Helm release setting the registry's image back
    // to v1.0.0 (server-side, taking the field over)
    let site = Site::builder("stdrift")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create();
    let config = site.config().write();
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    let ns = site.ns("gstg");
    let helm = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "gitlab-registry", "namespace": ns },
        "spec": { "selector": { "matchLabels": { "app": "registry" } },
            "template": { "metadata": { "labels": { "app": "registry" } },
                "spec": { "containers": [
                    { "name": "registry", "image": image_of("v1.0.0") } ] } } },
    });
    let path = site.dir().join("helm.json");
    std::fs::write(&path, helm.to_string()).expect("write");
    kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "helm",
        "--force-conflicts",
        "-f",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));

    // When status and plan are asked for
    let status = command(&config, &["status"], &["--no-health"]);
    let plan = command(&config, &["plan"], &["--version", "v2.0.0", "--no-health"]);
    // Then they name the drift: what serves, set by whom and when, against tagship's deploy
    for ran in [&status, &plan] {
        assert_eq!(ran.code, 0, "{}", ran.said);
        assert!(
            ran.stdout
                .contains("drift: serves v1.0.0, set by field manager `helm` at 20")
                && ran.stdout.contains("tagship deployed v2.0.0 at 20"),
            "{}",
            ran.said
        );
    }
    let json = command(&config, &["status"], &["--no-health", "--output", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("status JSON");
    let drifted = value["stages"][0]["live"]
        .as_array()
        .expect("workloads")
        .iter()
        .filter(|w| w["drift"].is_string())
        .count();
    assert_eq!(drifted, 1, "only the registry container drifted: {value}");

    // When v2.0.0 is deployed again, Then it says so and takes the image back
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.said.contains("drift: `gitlab-registry/registry` in `local-1` serves v1.0.0, set by field manager `helm`"),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    let status = command(&config, &["status"], &["--no-health"]);
    assert!(!status.stdout.contains("drift:"), "{}", status.said);
}
