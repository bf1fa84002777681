//! End-to-end: images and init containers as a kubelet treats them — an init container that
//! crash-loops holds its pod in `Init`, an image that cannot be pulled, a reference Docker's grammar
//! rejects and a digest the registry does not give each keep the pod from ever being Ready with
//! the kubelet's reason, and the digest the registry gives rolls out.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tagship_tests::conventions::manifest_digest;
use tagship_tests::harness::{Environment, TestNamespace, wait_for_pod};
use tagship_tests::rollout::{Rollout, wait_for_rollout};

const MANAGER: &str = "tagship-tests";
const TIMEOUT: Duration = Duration::from_mins(1);

/// Applies Deployment `registry` (one replica) with these init containers and this registry image.
async fn deploy(
    env: &Environment,
    ns: &TestNamespace,
    init_containers: &Value,
    image: &str,
) -> anyhow::Result<Api<Deployment>> {
    let manifest = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "registry"},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 60,
            "selector": {"matchLabels": {"app": "registry"}},
            "template": {
                "metadata": {"labels": {"app": "registry"}},
                "spec": {
                    "initContainers": init_containers,
                    "containers": [{"name": "registry", "image": image}],
                },
            },
        },
    });
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &ns.name);
    api.patch(
        "registry",
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await?;
    Ok(api)
}

fn status(statuses: Option<&Vec<ContainerStatus>>) -> Option<&ContainerStatus> {
    statuses?.first()
}

fn waiting_reason(s: Option<&ContainerStatus>) -> Option<&str> {
    s?.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

fn waiting_message(s: Option<&ContainerStatus>) -> Option<&str> {
    s?.state.as_ref()?.waiting.as_ref()?.message.as_deref()
}

fn containers(p: &Pod) -> Option<&ContainerStatus> {
    status(p.status.as_ref()?.container_statuses.as_ref())
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits for the registry container to wait with `reason`, then checks that for three more seconds
/// its pod stays Pending and never Ready; returns the pod first seen so.
async fn never_ready_with(pods: &Api<Pod>, reason: &str) -> anyhow::Result<Pod> {
    let pod = wait_for_pod(pods, TIMEOUT, reason, |p| {
        waiting_reason(containers(p)) == Some(reason)
    })
    .await?;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = pods
            .get(&pod.metadata.name.clone().unwrap_or_default())
            .await?;
        assert!(!is_ready(&now), "{reason}: became Ready");
        assert_eq!(
            now.status.and_then(|s| s.phase).as_deref(),
            Some("Pending"),
            "{reason}"
        );
    }
    Ok(pod)
}

#[tokio::test]
async fn a_crash_looping_init_container_keeps_the_pod_pending_in_init() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("init", "").await?;
    deploy(
        &env,
        &ns,
        &json!([{"name": "migrations", "image": "registry.local/registry:v3.0.0-crashloop-gitlab"}]),
        "registry.local/registry:v3.0.0-gitlab",
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let pod = never_ready_with(&pods, "PodInitializing").await?;
    let status = pod.status.expect("status");
    let init = status
        .init_container_statuses
        .as_ref()
        .and_then(|s| s.first())
        .expect("init container status");
    assert_eq!(waiting_reason(Some(init)), Some("CrashLoopBackOff"));
    assert!(init.restart_count >= 1);
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Initialized")
        .expect("Initialized condition");
    assert_eq!(initialized.status, "False");
    // kubectl shows it as Init:CrashLoopBackOff
    let out = env.kubectl(&["get", "pods", "-n", &ns.name, "--no-headers"])?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("Init:CrashLoopBackOff"), "{table}");
    Ok(())
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_never_ready() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("pull", "").await?;
    let image = "registry.local/registry:v3.1.0-pullfail-gitlab";
    deploy(&env, &ns, &json!([]), image).await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let pod = never_ready_with(&pods, "ErrImagePull").await?;
    assert_eq!(
        waiting_message(containers(&pod)),
        Some(
            format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
            )
            .as_str()
        )
    );
    // and, after the first attempt, backs off
    let pod = never_ready_with(&pods, "ImagePullBackOff").await?;
    assert_eq!(
        waiting_message(containers(&pod)),
        Some(format!("Back-off pulling image \"{image}\"").as_str())
    );
    Ok(())
}

#[tokio::test]
async fn an_invalid_image_reference_is_never_ready() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("badname", "").await?;
    let image = "registry.local/registry:v2.0.1+build.7-gitlab";
    deploy(&env, &ns, &json!([]), image).await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let pod = never_ready_with(&pods, "InvalidImageName").await?;
    assert_eq!(
        waiting_message(containers(&pod)),
        Some(format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image reference \"{image}\": invalid reference format"
        ).as_str())
    );
    Ok(())
}

#[tokio::test]
async fn a_digest_the_registry_does_not_give_the_tag_is_never_ready() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("digest", "").await?;
    // the digest of another tag
    let digest = manifest_digest("gitlab/registry", "v3.1.0-gitlab");
    let image = format!("registry.example.com/gitlab/registry:v3.1.1-gitlab@{digest}");
    deploy(&env, &ns, &json!([]), &image).await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let pod = never_ready_with(&pods, "ErrImagePull").await?;
    let message = waiting_message(containers(&pod)).unwrap_or_default();
    assert!(message.contains("manifest unknown"), "{message}");
    Ok(())
}

#[tokio::test]
async fn the_digest_the_registry_gives_rolls_out_and_shows_in_the_image_id() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("pinned", "").await?;
    let digest = manifest_digest("gitlab/registry", "v3.1.0-gitlab");
    let image = format!("registry.example.com/gitlab/registry:v3.1.0-gitlab@{digest}");
    let api = deploy(&env, &ns, &json!([]), &image).await?;
    assert_eq!(
        wait_for_rollout(&api, "registry", TIMEOUT).await?,
        Rollout::Complete
    );
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let pod = wait_for_pod(&pods, TIMEOUT, "a Ready pod", is_ready).await?;
    assert_eq!(
        containers(&pod).map(|s| s.image_id.as_str()),
        Some(format!("registry.example.com/gitlab/registry@{digest}").as_str())
    );
    Ok(())
}
