//! The kubelet stand-in: there is no kubelet and no scheduler in the local cluster, so this binds
//! every pod to a pretend node and drives its status the way a node would, by the image-tag
//! conventions of [`crate::conventions`]:
//!
//! - a normal tag becomes `Running` and Ready after [`KubeletConfig::ready_after`];
//! - a tag containing `crashloop` stays `Running` but never Ready: its container waits in
//!   `CrashLoopBackOff` with a `restartCount` that grows every [`KubeletConfig::crash_every`];
//! - a Job pod (owned by a Job, or with `restartPolicy` `Never`/`OnFailure`) ends `Succeeded`, or
//!   `Failed` when a container's tag, command or arguments contain `fail`; a command or argument
//!   word `runs-for-ms=N` keeps it `Running` N ms longer first;
//! - a pod marked for deletion is deleted at once (what a kubelet does once its containers stopped).
//!
//! Status goes through the `status` subresource, so the real controllers compute Deployment,
//! `ReplicaSet` and Job status from it. The decision ([`plan`]) is pure; [`run`] only performs it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::conventions::{behaviour_of_image, job_fails, job_runs_for};

/// How the stand-in behaves. Defaults: ready after 300 ms, a crash-looping container restarts every
/// 2 s, pods are bound to node `tagship-node`, and every pod is looked at every 100 ms.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Delay between first seeing a pod and reporting it Running (or a Job pod finished).
    pub ready_after: Duration,
    /// Interval between two restarts of a crash-looping container.
    pub crash_every: Duration,
    /// Name of the pretend node pods are bound to.
    pub node_name: String,
    /// How often every known pod is looked at.
    pub tick: Duration,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            ready_after: Duration::from_millis(300),
            crash_every: Duration::from_secs(2),
            node_name: "tagship-node".to_owned(),
            tick: Duration::from_millis(100),
        }
    }
}

/// The state a pod should be in now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodPlan {
    /// Not yet started: leave the status alone.
    Pending,
    /// Running and Ready.
    Running,
    /// Running, never Ready, restarted this many times.
    CrashLooping {
        /// The container's `restartCount`.
        restarts: i32,
    },
    /// A Job pod that finished with exit code 0.
    Succeeded,
    /// A Job pod that finished with exit code 1.
    Failed,
}

/// Whether the pod runs to completion (a Job's pod) rather than forever.
pub fn is_job_pod(pod: &Pod) -> bool {
    let owned_by_job = pod.owner_references().iter().any(|o| o.kind == "Job");
    let restart_policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    owned_by_job || matches!(restart_policy, Some("Never" | "OnFailure"))
}

/// A container's command and arguments, word by word.
fn words(c: &k8s_openapi::api::core::v1::Container) -> impl Iterator<Item = &str> {
    c.command
        .iter()
        .chain(c.args.iter())
        .flatten()
        .map(String::as_str)
}

/// What `pod` should look like `elapsed` after the stand-in first saw it.
pub fn plan(pod: &Pod, elapsed: Duration, config: &KubeletConfig) -> PodPlan {
    if elapsed < config.ready_after {
        return PodPlan::Pending;
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let image = |c: &k8s_openapi::api::core::v1::Container| c.image.clone().unwrap_or_default();
    if is_job_pod(pod) {
        let runs_for = containers
            .iter()
            .map(|c| job_runs_for(words(c)))
            .max()
            .unwrap_or_default();
        if elapsed < config.ready_after + runs_for {
            return PodPlan::Running;
        }
        let fails = containers.iter().any(|c| job_fails(&image(c), words(c)));
        return if fails {
            PodPlan::Failed
        } else {
            PodPlan::Succeeded
        };
    }
    if containers
        .iter()
        .any(|c| behaviour_of_image(&image(c)).crashloop)
    {
        let since = elapsed.saturating_sub(config.ready_after);
        let every = config.crash_every.as_millis().max(1);
        let restarts = i32::try_from(since.as_millis() / every)
            .unwrap_or(i32::MAX)
            .saturating_add(1);
        return PodPlan::CrashLooping { restarts };
    }
    PodPlan::Running
}

/// The plan the pod's current status already shows, if it shows one.
pub fn observed(pod: &Pod) -> Option<PodPlan> {
    let status = pod.status.as_ref()?;
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    match status.phase.as_deref()? {
        "Succeeded" => Some(PodPlan::Succeeded),
        "Failed" => Some(PodPlan::Failed),
        "Running" if statuses.iter().any(|s| !s.ready) => Some(PodPlan::CrashLooping {
            restarts: statuses.iter().map(|s| s.restart_count).max().unwrap_or(0),
        }),
        "Running" => Some(PodPlan::Running),
        _ => None,
    }
}

/// The status merge patch that makes `pod` show `plan`. `started` is when its containers started.
pub fn status_patch(pod: &Pod, plan: &PodPlan, started: &str) -> Value {
    let now = now();
    let ready = *plan == PodPlan::Running;
    let flag = |b: bool| if b { "True" } else { "False" };
    let (phase, reason) = match plan {
        PodPlan::Pending | PodPlan::Running => ("Running", None),
        PodPlan::CrashLooping { .. } => ("Running", Some("ContainersNotReady")),
        PodPlan::Succeeded => ("Succeeded", Some("PodCompleted")),
        PodPlan::Failed => ("Failed", Some("PodFailed")),
    };
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let container_statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let (state, last_state, restarts) = match plan {
                PodPlan::Pending | PodPlan::Running => {
                    (json!({"running": {"startedAt": started}}), json!({}), 0)
                }
                PodPlan::CrashLooping { restarts } => (
                    json!({"waiting": {"reason": "CrashLoopBackOff",
                        "message": format!("back-off restarting failed container {}", c.name)}}),
                    json!({"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": started, "finishedAt": now}}),
                    *restarts,
                ),
                PodPlan::Succeeded | PodPlan::Failed => {
                    let failed = *plan == PodPlan::Failed;
                    let terminated = json!({"terminated": {
                        "exitCode": i32::from(failed),
                        "reason": if failed { "Error" } else { "Completed" },
                        "startedAt": started, "finishedAt": now}});
                    (terminated, json!({}), 0)
                }
            };
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": format!("tagship-standin://{}", c.image.as_deref().unwrap_or_default()),
                "containerID": format!("tagship-standin://{}/{}", pod.uid().unwrap_or_default(), c.name),
                "ready": ready,
                "started": matches!(plan, PodPlan::Running | PodPlan::Pending),
                "restartCount": restarts,
                "state": state,
                "lastState": last_state,
            })
        })
        .collect();
    let condition = |kind: &str, status: bool| {
        let mut c = json!({"type": kind, "status": flag(status), "lastTransitionTime": now,
            "lastProbeTime": null});
        if let (false, Some(reason)) = (status, reason) {
            c["reason"] = json!(reason);
        }
        c
    };
    json!({
        "status": {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": started,
            "conditions": [
                condition("Initialized", true),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", true),
            ],
            "containerStatuses": container_statuses,
        }
    })
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

struct Tracked {
    first_seen: Instant,
    started: String,
    written: Option<PodPlan>,
    bind_requested: bool,
    delete_requested: bool,
}

/// Runs the stand-in until the watch stream ends or an API call fails in a way that is not
/// about one pod. Errors about one pod are reported on stderr and retried on the next tick.
pub async fn run(client: Client, config: KubeletConfig) -> anyhow::Result<()> {
    let all: Api<Pod> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let stream = watcher(all, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let watch = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                eprintln!("kubelet-standin: watch error (retrying): {e}");
            }
        }
    });
    store.wait_until_ready().await?;
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    let mut ticker = tokio::time::interval(config.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if watch.is_finished() {
            anyhow::bail!("the pod watch ended");
        }
        let pods = store.state();
        tracked.retain(|uid, _| pods.iter().any(|p| p.uid().as_deref() == Some(uid)));
        for pod in pods {
            let Some(uid) = pod.uid() else { continue };
            let t = tracked.entry(uid).or_insert_with(|| Tracked {
                first_seen: Instant::now(),
                started: now(),
                written: None,
                bind_requested: false,
                delete_requested: false,
            });
            if let Err(e) = step(&client, &config, &pod, t).await {
                eprintln!(
                    "kubelet-standin: pod `{}` in namespace `{}`: {e}",
                    pod.name_any(),
                    pod.namespace().unwrap_or_default()
                );
            }
        }
    }
}

async fn step(
    client: &Client,
    config: &KubeletConfig,
    pod: &Pod,
    t: &mut Tracked,
) -> anyhow::Result<()> {
    let namespace = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let name = pod.name_any();
    if pod.metadata.deletion_timestamp.is_some() {
        if !t.delete_requested {
            t.delete_requested = true;
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            if let Err(e) = api.delete(&name, &params).await {
                t.delete_requested = false;
                if !is_not_found(&e) {
                    return Err(e.into());
                }
            }
        }
        return Ok(());
    }
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_none()
    {
        if !t.bind_requested {
            t.bind_requested = true;
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": config.node_name},
            });
            if let Err(e) = api
                .create_subresource::<Value, Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                t.bind_requested = false;
                return Err(e.into());
            }
        }
        return Ok(());
    }
    let wanted = plan(pod, t.first_seen.elapsed(), config);
    if wanted == PodPlan::Pending
        || t.written.as_ref() == Some(&wanted)
        || observed(pod).as_ref() == Some(&wanted)
    {
        return Ok(());
    }
    let patch = status_patch(pod, &wanted, &t.started);
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => t.written = Some(wanted),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_json::from_value(serde_json::from_str::<Value>(yaml).expect("json")).expect("pod")
    }

    fn deployment_pod(image: &str) -> Pod {
        pod(&format!(
            r#"{{"metadata": {{"name": "p", "ownerReferences": [{{"apiVersion": "apps/v1",
              "kind": "ReplicaSet", "name": "rs", "uid": "1"}}]}},
              "spec": {{"containers": [{{"name": "c", "image": "{image}"}}]}}}}"#
        ))
    }

    fn job_pod(image: &str, args: &str) -> Pod {
        pod(&format!(
            r#"{{"metadata": {{"name": "p", "ownerReferences": [{{"apiVersion": "batch/v1",
              "kind": "Job", "name": "j", "uid": "1"}}]}},
              "spec": {{"restartPolicy": "Never",
                "containers": [{{"name": "c", "image": "{image}", "args": [{args}]}}]}}}}"#
        ))
    }

    const SOON: Duration = Duration::from_millis(10);
    const LATER: Duration = Duration::from_secs(1);

    #[test]
    fn a_normal_pod_waits_then_runs_ready() {
        let config = KubeletConfig::default();
        let p = deployment_pod("r/registry:v1.0.0-gitlab");
        assert_eq!(plan(&p, SOON, &config), PodPlan::Pending);
        assert_eq!(plan(&p, LATER, &config), PodPlan::Running);
    }

    #[test]
    fn a_crashloop_pod_never_gets_ready_and_restarts_more_over_time() {
        let config = KubeletConfig::default();
        let p = deployment_pod("r/registry:v2-crashloop");
        assert_eq!(
            plan(&p, LATER, &config),
            PodPlan::CrashLooping { restarts: 1 }
        );
        assert_eq!(
            plan(&p, Duration::from_secs(7), &config),
            PodPlan::CrashLooping { restarts: 4 }
        );
    }

    #[test]
    fn a_job_pod_succeeds_unless_its_tag_or_arguments_say_fail() {
        let config = KubeletConfig::default();
        assert_eq!(
            plan(&job_pod("r/migrate:v1", r#""true""#), LATER, &config),
            PodPlan::Succeeded
        );
        assert_eq!(
            plan(&job_pod("r/migrate:v1-fail", ""), LATER, &config),
            PodPlan::Failed
        );
        assert_eq!(
            plan(&job_pod("r/migrate:v1", r#""--fail""#), LATER, &config),
            PodPlan::Failed
        );
    }

    #[test]
    fn a_job_pod_runs_as_long_as_its_runs_for_word_says_then_ends() {
        let config = KubeletConfig::default();
        let pod = job_pod("r/migrate:v1", r#""up", "runs-for-ms=2000""#);
        let running = config.ready_after + Duration::from_millis(1900);
        assert_eq!(plan(&pod, running, &config), PodPlan::Running);
        let ended = config.ready_after + Duration::from_secs(2);
        assert_eq!(plan(&pod, ended, &config), PodPlan::Succeeded);
        let failing = job_pod("r/migrate:v1", r#""--fail", "runs-for-ms=2000""#);
        assert_eq!(plan(&failing, running, &config), PodPlan::Running);
        assert_eq!(plan(&failing, ended, &config), PodPlan::Failed);
    }

    #[test]
    fn the_patch_for_a_plan_reads_back_as_that_plan() {
        for (p, wanted) in [
            (deployment_pod("r:v1"), PodPlan::Running),
            (
                deployment_pod("r:v1-crashloop"),
                PodPlan::CrashLooping { restarts: 3 },
            ),
            (job_pod("r:v1", ""), PodPlan::Succeeded),
            (job_pod("r:v1-fail", ""), PodPlan::Failed),
        ] {
            let mut patched = p.clone();
            let status = status_patch(&p, &wanted, &now())["status"].clone();
            patched.status = Some(serde_json::from_value(status).expect("status"));
            assert_eq!(observed(&patched), Some(wanted));
        }
    }
}
