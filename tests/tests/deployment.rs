//! End-to-end: Deployments on the local cluster roll out, or fail, the way the real controllers and
//! `kubectl rollout status` say, driven by the kubelet stand-in's image-tag conventions.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use tagship_tests::harness::{Environment, deployment_manifest};
use tagship_tests::rollout::{PROGRESS_DEADLINE_EXCEEDED, Rollout, wait_for_rollout};

const MANAGER: &str = "tagship-tests";
const ROLLOUT_TIMEOUT: Duration = Duration::from_mins(1);

async fn apply(
    api: &Api<Deployment>,
    name: &str,
    image: &str,
    deadline: i32,
) -> anyhow::Result<()> {
    let manifest = deployment_manifest(name, image, 2, deadline);
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn server_side_apply_creates_and_updates_a_deployment_and_kubectl_agrees_each_rollout_completes()
-> anyhow::Result<()> {
    // Given a fresh namespace
    let env = Environment::connect().await?;
    let ns = env.namespace("deploy", "").await?;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &ns.name);

    for version in ["v1.0.0-gitlab", "v1.1.0-gitlab"] {
        // When a version is applied server-side
        apply(
            &api,
            "registry",
            &format!("registry.local/registry:{version}"),
            20,
        )
        .await?;

        // Then the rollout completes by kubectl's rule, and kubectl itself agrees
        assert_eq!(
            wait_for_rollout(&api, "registry", ROLLOUT_TIMEOUT).await?,
            Rollout::Complete
        );
        let out = env.kubectl(&[
            "rollout",
            "status",
            "deployment/registry",
            "-n",
            &ns.name,
            "--timeout=30s",
        ])?;
        assert!(
            out.status.success(),
            "kubectl rollout status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let d = api.get("registry").await?;
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
        assert_eq!(d.status.as_ref().and_then(|s| s.ready_replicas), Some(2));
    }

    // And only pods of the last version are left
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let images: Vec<String> = pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
        .collect();
    assert_eq!(images, vec!["registry.local/registry:v1.1.0-gitlab"; 2]);
    Ok(())
}

#[tokio::test]
async fn a_crashloop_image_ends_its_rollout_in_progress_deadline_exceeded() -> anyhow::Result<()> {
    // Given a Deployment running a good version
    let env = Environment::connect().await?;
    let ns = env.namespace("crash", "").await?;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &ns.name);
    apply(
        &api,
        "registry",
        "registry.local/registry:v1.0.0-gitlab",
        10,
    )
    .await?;
    assert_eq!(
        wait_for_rollout(&api, "registry", ROLLOUT_TIMEOUT).await?,
        Rollout::Complete
    );

    // When a crash-looping version is applied
    apply(
        &api,
        "registry",
        "registry.local/registry:v1.1.0-crashloop",
        10,
    )
    .await?;

    // Then the rollout fails on its progress deadline, kubectl agrees, and the old pods keep serving
    assert_eq!(
        wait_for_rollout(&api, "registry", ROLLOUT_TIMEOUT).await?,
        Rollout::Failed(PROGRESS_DEADLINE_EXCEEDED.to_owned())
    );
    let out = env.kubectl(&[
        "rollout",
        "status",
        "deployment/registry",
        "-n",
        &ns.name,
        "--timeout=30s",
    ])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeded its progress deadline"));
    let d = api.get("registry").await?;
    assert!(
        d.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            >= 1
    );

    // And the new pod shows CrashLoopBackOff with restarts
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let crashing = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find_map(|p| {
            let s = p.status?.container_statuses?.into_iter().next()?;
            let waiting = s.state?.waiting?.reason?;
            (waiting == "CrashLoopBackOff").then_some(s.restart_count)
        });
    assert!(
        crashing.is_some_and(|restarts| restarts >= 1),
        "no crash-looping pod: {crashing:?}"
    );
    Ok(())
}
