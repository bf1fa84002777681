//! End-to-end: containers are configured as a kubelet configures them — a Secret env that does not
//! resolve keeps a Deployment's pod waiting `CreateContainerConfigError` until the Secret exists,
//! and a Job's `requires-env=`/`requires-file=` words are met by Secret envs, `ConfigMap` volumes
//! and files an init container wrote into an `emptyDir`, or fail it saying what is missing.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStateTerminated, Event, Pod, Secret};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use tagship_tests::harness::{Environment, TestNamespace, wait_for_pod};
use tagship_tests::rollout::{JobOutcome, Rollout, wait_for_job, wait_for_rollout};

const TIMEOUT: Duration = Duration::from_mins(1);
const IMAGE: &str = "registry.local/registry:v3.1.0-gitlab";
const CONFIG_PATH: &str = "/etc/docker/registry/config.yml";

fn password_env() -> Value {
    json!([{"name": "REGISTRY_DATABASE_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "registry-db", "key": "password"}}}])
}

async fn create_secret(env: &Environment, ns: &TestNamespace) -> anyhow::Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "registry-db"},
        "stringData": {"password": "hunter2"},
    }))?;
    Api::<Secret>::namespaced(env.client.clone(), &ns.name)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

async fn create_config_map(env: &Environment, ns: &TestNamespace) -> anyhow::Result<()> {
    let map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "registry"},
        "data": {"config.yml": "version: 0.1\n"},
    }))?;
    Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name)
        .create(&PostParams::default(), &map)
        .await?;
    Ok(())
}

fn first_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

fn waiting(pod: &Pod) -> Option<(String, String)> {
    let w = first_status(pod)?.state.as_ref()?.waiting.as_ref()?;
    Some((
        w.reason.clone().unwrap_or_default(),
        w.message.clone().unwrap_or_default(),
    ))
}

#[tokio::test]
async fn a_deployment_whose_secret_is_missing_waits_create_container_config_error_then_rolls_out_once_it_exists()
-> anyhow::Result<()> {
    // Given a Deployment whose registry container takes its password from a Secret not created yet
    let env = Environment::connect().await?;
    let ns = env.namespace("config", "").await?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "registry"},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 60,
            "selector": {"matchLabels": {"app": "registry"}},
            "template": {
                "metadata": {"labels": {"app": "registry"}},
                "spec": {"containers": [{"name": "registry", "image": IMAGE,
                    "args": ["serve", "requires-env=REGISTRY_DATABASE_PASSWORD"],
                    "env": password_env()}]},
            },
        },
    }))?;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &ns.name);
    api.create(&PostParams::default(), &deployment).await?;

    // Then its pod waits CreateContainerConfigError with the kubelet's message, Pending, not Ready
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let pod = wait_for_pod(
        &pods,
        TIMEOUT,
        "a pod waiting CreateContainerConfigError",
        |p| waiting(p).is_some_and(|(reason, _)| reason == "CreateContainerConfigError"),
    )
    .await?;
    assert_eq!(
        waiting(&pod).map(|(_, message)| message).as_deref(),
        Some(r#"secret "registry-db" not found"#)
    );
    let status = pod.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(!first_status(&pod).expect("container status").ready);

    // When the Secret is created
    create_secret(&env, &ns).await?;

    // Then the pod starts and the rollout completes
    assert_eq!(
        wait_for_rollout(&api, "registry", TIMEOUT).await?,
        Rollout::Complete
    );
    Ok(())
}

#[tokio::test]
async fn a_deployment_whose_config_map_volume_is_missing_waits_container_creating_with_a_failed_mount_event()
-> anyhow::Result<()> {
    // Given a Deployment mounting a ConfigMap that does not exist
    let env = Environment::connect().await?;
    let ns = env.namespace("mount", "").await?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "registry"},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 60,
            "selector": {"matchLabels": {"app": "registry"}},
            "template": {
                "metadata": {"labels": {"app": "registry"}},
                "spec": {
                    "volumes": [{"name": "config", "configMap": {"name": "registry"}}],
                    "containers": [{"name": "registry", "image": IMAGE,
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/docker/registry"}]}],
                },
            },
        },
    }))?;
    Api::<Deployment>::namespaced(env.client.clone(), &ns.name)
        .create(&PostParams::default(), &deployment)
        .await?;

    // Then a FailedMount event names the volume and the ConfigMap, and the pod waits ContainerCreating
    let events: Api<Event> = Api::namespaced(env.client.clone(), &ns.name);
    let message = tagship_tests::harness::eventually(TIMEOUT, "a FailedMount event", || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedMount"))
            .and_then(|e| e.message))
    })
    .await?;
    assert_eq!(
        message,
        r#"MountVolume.SetUp failed for volume "config" : configmap "registry" not found"#
    );
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let pod = wait_for_pod(&pods, TIMEOUT, "a pod waiting ContainerCreating", |p| {
        waiting(p).is_some_and(|(reason, _)| reason == "ContainerCreating")
    })
    .await?;
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    Ok(())
}

/// Runs Job `migrate` with `pod_spec` in a fresh namespace with the `registry-db` Secret and the
/// `registry` `ConfigMap`; returns its outcome and its container's termination.
async fn run_job(pod_spec: Value) -> anyhow::Result<(JobOutcome, ContainerStateTerminated)> {
    let env = Environment::connect().await?;
    let ns = env.namespace("needs", "").await?;
    create_secret(&env, &ns).await?;
    create_config_map(&env, &ns).await?;
    let mut spec = pod_spec;
    spec["restartPolicy"] = json!("Never");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }))?;
    let api: Api<Job> = Api::namespaced(env.client.clone(), &ns.name);
    api.create(&PostParams::default(), &job).await?;
    let outcome = wait_for_job(&api, "migrate", TIMEOUT).await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns.name);
    let pod = wait_for_pod(&pods, TIMEOUT, "the Job's ended pod", |p| {
        first_status(p).is_some_and(|s| s.state.as_ref().is_some_and(|s| s.terminated.is_some()))
    })
    .await?;
    let terminated = first_status(&pod)
        .and_then(|s| s.state.clone()?.terminated)
        .expect("terminated");
    Ok((outcome, terminated))
}

fn migrate(env: &Value, mounts: &Value) -> Value {
    json!({"name": "migrate", "image": IMAGE, "env": env, "volumeMounts": mounts,
        "args": ["migrate", "up", "requires-env=REGISTRY_DATABASE_PASSWORD",
            format!("requires-file={CONFIG_PATH}")]})
}

fn config_volume() -> Value {
    json!([{"name": "config", "configMap": {"name": "registry"}}])
}

fn config_mount() -> Value {
    json!([{"name": "config", "mountPath": "/etc/docker/registry"}])
}

#[tokio::test]
async fn a_job_needing_a_secret_env_and_a_config_map_file_completes_when_both_are_given()
-> anyhow::Result<()> {
    let (outcome, terminated) = run_job(json!({
        "volumes": config_volume(),
        "containers": [migrate(&password_env(), &config_mount())],
    }))
    .await?;
    assert_eq!(outcome, JobOutcome::Complete);
    assert_eq!(terminated.exit_code, 0);
    assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    Ok(())
}

#[tokio::test]
async fn a_job_needing_a_file_an_init_container_writes_into_an_empty_dir_completes()
-> anyhow::Result<()> {
    // The init container mounts the emptyDir at /config and writes config.yml there; the
    // migration mounts the same volume at /etc/docker/registry.
    let (outcome, _) = run_job(json!({
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "initContainers": [{"name": "configure", "image": IMAGE,
            "args": ["render-config", "writes-file=/config/config.yml"],
            "volumeMounts": [{"name": "shared", "mountPath": "/config"}]}],
        "containers": [migrate(
            &password_env(),
            &json!([{"name": "shared", "mountPath": "/etc/docker/registry"}]),
        )],
    }))
    .await?;
    assert_eq!(outcome, JobOutcome::Complete);
    Ok(())
}

#[tokio::test]
async fn a_job_whose_config_volume_is_left_out_fails_saying_the_file_is_missing()
-> anyhow::Result<()> {
    let (outcome, terminated) = run_job(json!({
        "containers": [migrate(&password_env(), &json!([]))],
    }))
    .await?;
    assert_eq!(outcome, JobOutcome::Failed);
    assert_eq!(terminated.exit_code, 1);
    assert_eq!(
        terminated.message.as_deref(),
        Some("open /etc/docker/registry/config.yml: no such file or directory")
    );
    Ok(())
}

#[tokio::test]
async fn a_job_whose_secret_ref_is_left_out_fails_saying_the_variable_is_not_set()
-> anyhow::Result<()> {
    let (outcome, terminated) = run_job(json!({
        "volumes": config_volume(),
        "containers": [migrate(&json!([]), &config_mount())],
    }))
    .await?;
    assert_eq!(outcome, JobOutcome::Failed);
    assert_eq!(
        terminated.message.as_deref(),
        Some("REGISTRY_DATABASE_PASSWORD is not set")
    );
    Ok(())
}
