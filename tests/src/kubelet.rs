//! The kubelet stand-in: there is no kubelet and no scheduler in the local cluster, so this binds
//! every pod to a pretend node and drives its status the way a node would, by the conventions of
//! [`crate::conventions`]. Per container, in a kubelet's order:
//!
//! 1. the image reference must be valid ([`crate::reference`]), else `InvalidImageName`;
//! 2. the image must pull: a tag with `pullfail` or `missing`, or a digest other than the one the
//!    simulated registry gives the tag ([`crate::conventions::manifest_digest`]), waits
//!    `ErrImagePull` and `ImagePullBackOff` by turns;
//! 3. its configuration must resolve ([`crate::configuration`]): Secrets and `ConfigMaps` of its
//!    `env`/`envFrom`, else `CreateContainerConfigError`; before any container, the pod's volumes
//!    must mount, else every container waits `ContainerCreating` (`PodInitializing` with init
//!    containers) and a `FailedMount` event is posted;
//! 4. then it starts: its `requires-env=`/`requires-file=` words must be met by the resolved
//!    environment and files, else a Job pod's container ends `Failed` (exit 1) and any other
//!    crash-loops, each with the reason as the termination message; a tag with `crashloop`
//!    crash-loops (`CrashLoopBackOff`, `restartCount` growing every
//!    [`KubeletConfig::crash_every`]); a Job pod (owned by a Job, or with `restartPolicy`
//!    `Never`/`OnFailure`) runs `runs-for-ms=N` more milliseconds, then ends `Succeeded`, or
//!    `Failed` when the tag, command or arguments say `fail`; anything else runs and is Ready.
//!
//! Init containers go first, one at a time, each `Completed` (exit 0) at once (a Job pod's after
//! its `runs-for-ms=`); one that does not complete keeps the pod `Pending` and the regular
//! containers waiting `PodInitializing`. A `writes-file=` path of an init container that completed
//! is then in the `emptyDir` volume it mounts there. Nothing starts before
//! [`KubeletConfig::ready_after`]; a pod marked for deletion is deleted at once (what a kubelet does
//! once its containers stopped).
//!
//! Status goes through the `status` subresource, so the real controllers compute Deployment,
//! `ReplicaSet` and Job status from it. The decision ([`plan`]) is pure over the pod, the time
//! since the stand-in first saw it and the Secrets and `ConfigMaps` it refers to; [`run`] reads
//! those (a GET each when the pod starts, again about once a second while the pod is not settled,
//! as a kubelet retries) and writes the status.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, ContainerStatus, Event, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::configuration::{
    Objects, POD_IP, Written, expanded_words, mount_errors, references, resolve, unmet_requirement,
    written_by,
};
use crate::conventions::{
    behaviour_of_image, job_fails, job_runs_for, manifest_digest, registry_host_and_name,
    requirements, written_files,
};
use crate::reference::{ImageReference, invalid_image_message, parse_image_reference};

/// Waiting reason of a container not created yet, in a pod without init containers.
pub const CONTAINER_CREATING: &str = "ContainerCreating";
/// Waiting reason of a container not created yet, in a pod with init containers.
pub const POD_INITIALIZING: &str = "PodInitializing";
/// Waiting reason of a container whose image reference is not valid.
pub const INVALID_IMAGE_NAME: &str = "InvalidImageName";
/// Waiting reason of a container whose image pull just failed.
pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
/// Waiting reason of a container whose image pull failed and waits before trying again.
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
/// Waiting reason of a container whose Secret or `ConfigMap` references do not resolve.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
/// Waiting reason of a container that exited and waits before its next restart.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// How long the stand-in waits before reading a pod's Secrets and `ConfigMaps` again while the pod
/// is not settled.
pub const OBJECTS_REFRESH: Duration = Duration::from_secs(1);

/// How the stand-in behaves. Defaults: ready after 300 ms, a crash-looping container restarts every
/// 2 s, pods are bound to node `tagship-node`, and every pod is looked at every 100 ms.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Delay between first seeing a pod and starting it: reporting it Running (or a Job pod
    /// finished), or why its containers cannot start.
    pub ready_after: Duration,
    /// Interval between two restarts of a crash-looping container, and between two pull attempts.
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
    NotStarted,
    /// Show this status.
    Status(PodStatusPlan),
}

/// The status a started pod should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodStatusPlan {
    /// The pod's phase, by the kubelet's rule over its containers ([`phase`]).
    pub phase: Phase,
    /// One state per init container, in spec order.
    pub init_containers: Vec<ContainerPlan>,
    /// One state per container, in spec order.
    pub containers: Vec<ContainerPlan>,
}

impl PodStatusPlan {
    /// Whether nothing is left to retry: every init container completed and every container runs
    /// or ended. Until then the stand-in reads the pod's Secrets and `ConfigMaps` again.
    pub fn is_settled(&self) -> bool {
        self.init_containers.iter().all(ContainerPlan::completed)
            && self
                .containers
                .iter()
                .all(|c| matches!(c, ContainerPlan::Running | ContainerPlan::Terminated { .. }))
    }

    /// Whether every container runs (and so is Ready).
    pub fn is_ready(&self) -> bool {
        self.containers
            .iter()
            .all(|c| matches!(c, ContainerPlan::Running))
    }
}

/// A pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not every container has started.
    Pending,
    /// Every container started; at least one runs or restarts.
    Running,
    /// Every container ended with exit code 0.
    Succeeded,
    /// A container ended with a non-zero exit code and will not restart.
    Failed,
}

impl Phase {
    /// The phase as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    fn parse(phase: &str) -> Option<Self> {
        [Self::Pending, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|p| p.as_str() == phase)
    }
}

/// The state one container should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerPlan {
    /// Not created: waiting with this reason (one of the constants of this module) and message.
    Waiting {
        /// The waiting reason.
        reason: String,
        /// The kubelet's message, if it gives one.
        message: Option<String>,
    },
    /// Running (and Ready).
    Running,
    /// Exited with exit code 1 and waiting `CrashLoopBackOff` to restart.
    CrashLooping {
        /// The container's `restartCount`.
        restarts: i32,
        /// The message of its last termination, if it said why.
        message: Option<String>,
    },
    /// Ended, and not restarted.
    Terminated {
        /// The exit code: 0 is `Completed`, anything else `Error`.
        exit_code: i32,
        /// Why it ended, if it said.
        message: Option<String>,
    },
}

impl ContainerPlan {
    fn waiting(reason: &str, message: Option<String>) -> Self {
        Self::Waiting {
            reason: reason.to_owned(),
            message,
        }
    }

    fn completed(&self) -> bool {
        matches!(self, Self::Terminated { exit_code: 0, .. })
    }
}

/// Whether the pod runs to completion (a Job's pod) rather than forever.
pub fn is_job_pod(pod: &Pod) -> bool {
    let owned_by_job = pod.owner_references().iter().any(|o| o.kind == "Job");
    let restart_policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    owned_by_job || matches!(restart_policy, Some("Never" | "OnFailure"))
}

/// The message a container waits `ErrImagePull` with when its image cannot be pulled: a tag with
/// `pullfail` (not found), a tag with `missing`, or a digest that is not the one the simulated
/// registry gives the tag (manifest unknown). `None` when it pulls. A digest without a tag pulls.
pub fn pull_failure(image: &str, reference: &ImageReference<'_>) -> Option<String> {
    let behaviour = behaviour_of_image(image);
    let prefix =
        format!("rpc error: code = NotFound desc = failed to pull and unpack image {image:?}");
    if behaviour.pullfail {
        return Some(format!("{prefix}: not found"));
    }
    let wrong_digest = match (reference.tag, reference.digest) {
        (Some(tag), Some(digest)) => {
            digest != manifest_digest(registry_host_and_name(image).1, tag)
        }
        _ => false,
    };
    (behaviour.missing || wrong_digest).then(|| {
        format!(
            "{prefix}: failed to resolve reference {image:?}: manifest unknown: manifest unknown"
        )
    })
}

/// The `imageID` of a container running `image`: the repository (as written, without tag) and the
/// digest it was pulled by, or else the one the simulated registry gives its tag (`latest` when
/// it has none).
pub fn image_id(image: &str) -> String {
    let (host, name) = registry_host_and_name(image);
    let repository = host.map_or_else(|| name.to_owned(), |h| format!("{h}/{name}"));
    let digest = match image.split_once('@') {
        Some((_, digest)) => digest.to_owned(),
        None => manifest_digest(name, crate::conventions::image_tag(image)),
    };
    format!("{repository}@{digest}")
}

/// A pod's phase by the kubelet's rule (`getPhase`), a Job pod's containers never restarting: an
/// init container that failed fails a Job pod; one that has not completed, or a container not
/// created yet, keeps it `Pending`; a running container makes it `Running`, as does a
/// crash-looping one outside a Job pod; all ended is `Succeeded` when every exit code is 0.
pub fn phase(job: bool, init_containers: &[ContainerPlan], containers: &[ContainerPlan]) -> Phase {
    let mut init_pending = 0;
    let mut init_failed = 0;
    for c in init_containers {
        match c {
            ContainerPlan::Terminated { exit_code: 0, .. } => {}
            ContainerPlan::Terminated { .. } | ContainerPlan::CrashLooping { .. } => {
                init_failed += 1;
            }
            ContainerPlan::Running | ContainerPlan::Waiting { .. } => init_pending += 1,
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match c {
            ContainerPlan::Running => running += 1,
            ContainerPlan::Waiting { .. } => waiting += 1,
            ContainerPlan::CrashLooping { .. } => stopped += 1,
            ContainerPlan::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
        }
    }
    if init_failed > 0 && job {
        Phase::Failed
    } else if init_pending > 0 || waiting > 0 {
        Phase::Pending
    } else if running > 0 || (stopped > 0 && !job) {
        Phase::Running
    } else if stopped > 0 && stopped == succeeded {
        Phase::Succeeded
    } else if stopped > 0 {
        Phase::Failed
    } else {
        Phase::Pending
    }
}

/// What `pod` should look like `elapsed` after the stand-in first saw it, given the Secrets and
/// `ConfigMaps` of its namespace that it refers to.
pub fn plan(pod: &Pod, elapsed: Duration, config: &KubeletConfig, objects: &Objects) -> PodPlan {
    if elapsed < config.ready_after {
        return PodPlan::NotStarted;
    }
    let since = elapsed.saturating_sub(config.ready_after);
    let job = is_job_pod(pod);
    let (init_specs, specs) = pod.spec.as_ref().map_or((&[][..], &[][..]), |s| {
        (
            s.init_containers.as_deref().unwrap_or_default(),
            s.containers.as_slice(),
        )
    });
    let not_created =
        |reason: &'static str| move |_: &Container| ContainerPlan::waiting(reason, None);
    let status = |init_containers: Vec<ContainerPlan>, containers: Vec<ContainerPlan>| {
        PodPlan::Status(PodStatusPlan {
            phase: phase(job, &init_containers, &containers),
            init_containers,
            containers,
        })
    };
    if !mount_errors(pod, objects).is_empty() {
        let reason = if init_specs.is_empty() {
            CONTAINER_CREATING
        } else {
            POD_INITIALIZING
        };
        return status(
            init_specs.iter().map(not_created(reason)).collect(),
            specs.iter().map(not_created(reason)).collect(),
        );
    }
    let start = Start {
        pod,
        config,
        objects,
        job,
    };
    let mut written = Written::new();
    let mut offset = Duration::ZERO;
    let mut init_containers = Vec::new();
    for c in init_specs {
        if init_containers
            .iter()
            .any(|p: &ContainerPlan| !p.completed())
        {
            init_containers.push(ContainerPlan::waiting(POD_INITIALIZING, None));
            continue;
        }
        let outcome = start.container(c, since.saturating_sub(offset), &written, true);
        if outcome.plan.completed() {
            offset += outcome.ran_for;
            for (volume, files) in outcome.wrote {
                written.entry(volume).or_default().extend(files);
            }
        }
        init_containers.push(outcome.plan);
    }
    let containers = if init_containers.iter().all(ContainerPlan::completed) {
        let since = since.saturating_sub(offset);
        specs
            .iter()
            .map(|c| start.container(c, since, &written, false).plan)
            .collect()
    } else {
        specs.iter().map(not_created(POD_INITIALIZING)).collect()
    };
    status(init_containers, containers)
}

/// What starting one container led to.
struct Outcome {
    plan: ContainerPlan,
    /// How long it ran before ending (a Job pod's `runs-for-ms=`).
    ran_for: Duration,
    /// What it wrote into `emptyDir` volumes, when it completed.
    wrote: Written,
}

impl From<ContainerPlan> for Outcome {
    fn from(plan: ContainerPlan) -> Self {
        Self {
            plan,
            ran_for: Duration::ZERO,
            wrote: Written::new(),
        }
    }
}

/// The pod-wide inputs of starting its containers.
struct Start<'a> {
    pod: &'a Pod,
    config: &'a KubeletConfig,
    objects: &'a Objects,
    job: bool,
}

impl Start<'_> {
    /// Container `c`, `since` it could first start, after init containers wrote `written`.
    fn container(&self, c: &Container, since: Duration, written: &Written, init: bool) -> Outcome {
        let image = c.image.as_deref().unwrap_or_default();
        let every = self.config.crash_every.as_millis().max(1);
        let turns = since.as_millis() / every;
        let reference = match parse_image_reference(image) {
            Ok(reference) => reference,
            Err(e) => {
                let message = invalid_image_message(image, e);
                return ContainerPlan::waiting(INVALID_IMAGE_NAME, Some(message)).into();
            }
        };
        if let Some(message) = pull_failure(image, &reference) {
            return if turns.is_multiple_of(2) {
                ContainerPlan::waiting(ERR_IMAGE_PULL, Some(message))
            } else {
                let back_off = format!("Back-off pulling image {image:?}");
                ContainerPlan::waiting(IMAGE_PULL_BACK_OFF, Some(back_off))
            }
            .into();
        }
        let resolved = match resolve(self.pod, c, self.objects, written) {
            Ok(resolved) => resolved,
            Err(message) => {
                return ContainerPlan::waiting(CREATE_CONTAINER_CONFIG_ERROR, Some(message)).into();
            }
        };
        let words = expanded_words(c, &resolved.env);
        let words = || words.iter().map(String::as_str);
        let unmet = unmet_requirement(&requirements(words()), &resolved);
        let restarts = i32::try_from(turns).unwrap_or(i32::MAX).saturating_add(1);
        let completed = |ran_for| Outcome {
            plan: ContainerPlan::Terminated {
                exit_code: 0,
                message: None,
            },
            ran_for,
            wrote: written_by(self.pod, c, &resolved.env, &written_files(words())),
        };
        if self.job {
            if let Some(message) = unmet {
                return ContainerPlan::Terminated {
                    exit_code: 1,
                    message: Some(message),
                }
                .into();
            }
            let runs_for = job_runs_for(words());
            if since < runs_for {
                return ContainerPlan::Running.into();
            }
            if job_fails(image, words()) {
                return ContainerPlan::Terminated {
                    exit_code: 1,
                    message: None,
                }
                .into();
            }
            return completed(runs_for);
        }
        if unmet.is_some() || behaviour_of_image(image).crashloop {
            return ContainerPlan::CrashLooping {
                restarts,
                message: unmet,
            }
            .into();
        }
        if init {
            completed(Duration::ZERO)
        } else {
            ContainerPlan::Running.into()
        }
    }
}

/// The plan the pod's current status already shows, if it shows one (a phase and a state for
/// every container and init container).
pub fn observed(pod: &Pod) -> Option<PodPlan> {
    let status = pod.status.as_ref()?;
    let phase = Phase::parse(status.phase.as_deref()?)?;
    let spec = pod.spec.as_ref()?;
    let read = |specs: &[Container], statuses: Option<&Vec<ContainerStatus>>| {
        specs
            .iter()
            .map(|c| {
                let s = statuses?.iter().find(|s| s.name == c.name)?;
                observed_container(s)
            })
            .collect::<Option<Vec<_>>>()
    };
    Some(PodPlan::Status(PodStatusPlan {
        phase,
        init_containers: read(
            spec.init_containers.as_deref().unwrap_or_default(),
            status.init_container_statuses.as_ref(),
        )?,
        containers: read(&spec.containers, status.container_statuses.as_ref())?,
    }))
}

fn observed_container(s: &ContainerStatus) -> Option<ContainerPlan> {
    let state = s.state.as_ref()?;
    if state.running.is_some() {
        return Some(ContainerPlan::Running);
    }
    if let Some(t) = &state.terminated {
        return Some(ContainerPlan::Terminated {
            exit_code: t.exit_code,
            message: t.message.clone(),
        });
    }
    let waiting = state.waiting.as_ref()?;
    let reason = waiting.reason.clone().unwrap_or_default();
    let last = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
    Some(match last {
        Some(last) if reason == CRASH_LOOP_BACK_OFF => ContainerPlan::CrashLooping {
            restarts: s.restart_count,
            message: last.message.clone(),
        },
        _ => ContainerPlan::Waiting {
            reason,
            message: waiting.message.clone(),
        },
    })
}

/// The status merge patch that makes `pod` show `plan`. `started` is when its containers started.
pub fn status_patch(pod: &Pod, plan: &PodStatusPlan, started: &str) -> Value {
    let now = now();
    let spec = pod.spec.as_ref();
    let init_specs = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let specs = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let statuses = |specs: &[Container], plans: &[ContainerPlan], init: bool| -> Vec<Value> {
        specs
            .iter()
            .zip(plans)
            .map(|(c, p)| container_status(pod, c, p, init, started, &now))
            .collect()
    };
    let names = |specs: &[Container], plans: &[ContainerPlan], ok: fn(&ContainerPlan) -> bool| {
        let names: Vec<&str> = specs
            .iter()
            .zip(plans)
            .filter(|(_, p)| !ok(p))
            .map(|(c, _)| c.name.as_str())
            .collect();
        format!("[{}]", names.join(" "))
    };
    let condition = |kind: &str, reason: Option<(&str, Option<String>)>| {
        let mut c = json!({"type": kind, "status": if reason.is_none() { "True" } else { "False" },
            "lastTransitionTime": now, "lastProbeTime": null});
        if let Some((reason, message)) = reason {
            c["reason"] = json!(reason);
            if let Some(message) = message {
                c["message"] = json!(message);
            }
        }
        c
    };
    let initialized = plan
        .init_containers
        .iter()
        .all(ContainerPlan::completed)
        .then_some(())
        .map_or_else(
            || {
                let incomplete = names(init_specs, &plan.init_containers, ContainerPlan::completed);
                Some((
                    "ContainersNotInitialized",
                    Some(format!("containers with incomplete status: {incomplete}")),
                ))
            },
            |()| None,
        );
    let ready = if plan.is_ready() {
        None
    } else if plan.phase == Phase::Succeeded {
        Some(("PodCompleted", None))
    } else {
        let unready = names(specs, &plan.containers, |p| {
            matches!(p, ContainerPlan::Running)
        });
        Some((
            "ContainersNotReady",
            Some(format!("containers with unready status: {unready}")),
        ))
    };
    json!({
        "status": {
            "phase": plan.phase.as_str(),
            "hostIP": POD_IP,
            "podIP": POD_IP,
            "startTime": started,
            "conditions": [
                condition("Initialized", initialized),
                condition("Ready", ready.clone()),
                condition("ContainersReady", ready),
                condition("PodScheduled", None),
            ],
            "initContainerStatuses": statuses(init_specs, &plan.init_containers, true),
            "containerStatuses": statuses(specs, &plan.containers, false),
        }
    })
}

fn container_status(
    pod: &Pod,
    c: &Container,
    plan: &ContainerPlan,
    init: bool,
    started: &str,
    now: &str,
) -> Value {
    let image = c.image.as_deref().unwrap_or_default();
    let id = format!(
        "tagship-standin://{}/{}",
        pod.uid().unwrap_or_default(),
        c.name
    );
    let terminated = |exit_code: i32, message: &Option<String>| {
        let mut t = json!({"exitCode": exit_code,
            "reason": if exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": started, "finishedAt": now, "containerID": id});
        if let Some(message) = message {
            t["message"] = json!(message);
        }
        t
    };
    let (state, last_state, restarts) = match plan {
        ContainerPlan::Waiting { reason, message } => {
            let mut waiting = json!({"reason": reason});
            if let Some(message) = message {
                waiting["message"] = json!(message);
            }
            (json!({"waiting": waiting}), json!({}), 0)
        }
        ContainerPlan::Running => (json!({"running": {"startedAt": started}}), json!({}), 0),
        ContainerPlan::CrashLooping { restarts, message } => (
            json!({"waiting": {"reason": CRASH_LOOP_BACK_OFF,
                "message": format!("back-off restarting failed container {}", c.name)}}),
            json!({"terminated": terminated(1, message)}),
            *restarts,
        ),
        ContainerPlan::Terminated { exit_code, message } => (
            json!({"terminated": terminated(*exit_code, message)}),
            json!({}),
            0,
        ),
    };
    let created = !matches!(plan, ContainerPlan::Waiting { .. });
    let ready = if init {
        plan.completed()
    } else {
        matches!(plan, ContainerPlan::Running)
    };
    let mut status = json!({
        "name": c.name,
        "image": image,
        "imageID": if created { image_id(image) } else { String::new() },
        "ready": ready,
        "started": matches!(plan, ContainerPlan::Running),
        "restartCount": restarts,
        "state": state,
        "lastState": last_state,
    });
    if created {
        status["containerID"] = json!(id);
    }
    status
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
    /// The Secrets and `ConfigMaps` the pod refers to, as last read, and when.
    objects: Objects,
    objects_read: Option<Instant>,
    /// Whether the last plan left nothing to retry ([`PodStatusPlan::is_settled`]).
    settled: bool,
    /// The `FailedMount` messages already posted as events.
    events: BTreeSet<String>,
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
                objects: Objects::default(),
                objects_read: None,
                settled: false,
                events: BTreeSet::new(),
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
    let elapsed = t.first_seen.elapsed();
    if elapsed < config.ready_after {
        return Ok(());
    }
    let stale = t
        .objects_read
        .is_none_or(|at| !t.settled && at.elapsed() >= OBJECTS_REFRESH);
    if stale {
        t.objects = read_objects(client, &namespace, pod).await?;
        t.objects_read = Some(Instant::now());
    }
    for message in mount_errors(pod, &t.objects) {
        if !t.events.contains(&message) {
            // An event is a courtesy: failing to post one must not hold the status back.
            if let Err(e) = post_failed_mount(client, config, pod, &message).await {
                eprintln!("kubelet-standin: posting a FailedMount event: {e}");
            }
            t.events.insert(message);
        }
    }
    let PodPlan::Status(wanted) = plan(pod, elapsed, config, &t.objects) else {
        return Ok(());
    };
    t.settled = wanted.is_settled();
    let wanted = PodPlan::Status(wanted);
    if t.written.as_ref() == Some(&wanted) || observed(pod).as_ref() == Some(&wanted) {
        return Ok(());
    }
    let PodPlan::Status(status) = &wanted else {
        return Ok(());
    };
    let patch = status_patch(pod, status, &t.started);
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

/// Reads the Secrets and `ConfigMaps` `pod` refers to, a GET each (a missing one is left out).
async fn read_objects(client: &Client, namespace: &str, pod: &Pod) -> anyhow::Result<Objects> {
    let refs = references(pod);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut objects = Objects::default();
    for name in refs.secrets {
        if let Some(secret) = secrets.get_opt(&name).await? {
            objects.secrets.insert(name, secret);
        }
    }
    for name in refs.config_maps {
        if let Some(map) = config_maps.get_opt(&name).await? {
            objects.config_maps.insert(name, map);
        }
    }
    Ok(objects)
}

/// Posts the `FailedMount` warning a kubelet gives when a volume cannot be set up.
async fn post_failed_mount(
    client: &Client,
    config: &KubeletConfig,
    pod: &Pod,
    message: &str,
) -> anyhow::Result<()> {
    let namespace = pod.namespace().unwrap_or_default();
    let now = now();
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{}.", pod.name_any()), "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.name_any(),
            "namespace": namespace, "uid": pod.uid()},
        "reason": "FailedMount",
        "message": message,
        "type": "Warning",
        "source": {"component": "kubelet", "host": config.node_name},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }))?;
    Api::<Event>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &event)
        .await?;
    Ok(())
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: &Value) -> Pod {
        serde_json::from_value(json.clone()).expect("pod")
    }

    fn owned_pod(owner: &str, spec: &Value) -> Pod {
        let api_version = if owner == "Job" {
            "batch/v1"
        } else {
            "apps/v1"
        };
        pod(&json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "ownerReferences": [
                {"apiVersion": api_version, "kind": owner, "name": "o", "uid": "1"}]},
            "spec": spec,
        }))
    }

    fn deployment_pod(image: &str) -> Pod {
        owned_pod(
            "ReplicaSet",
            &json!({"containers": [{"name": "c", "image": image}]}),
        )
    }

    fn job_pod(image: &str, args: &[&str]) -> Pod {
        owned_pod(
            "Job",
            &json!({"restartPolicy": "Never",
                "containers": [{"name": "c", "image": image, "args": args}]}),
        )
    }

    const SOON: Duration = Duration::from_millis(10);
    const LATER: Duration = Duration::from_secs(1);

    fn plan_at(p: &Pod, elapsed: Duration) -> PodPlan {
        plan(p, elapsed, &KubeletConfig::default(), &objects())
    }

    fn objects() -> Objects {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "registry-db"}, "data": {"password": "aHVudGVyMg=="}}))
        .expect("secret");
        let map: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "registry"}, "data": {"config.yml": "version: 0.1"}}))
        .expect("configmap");
        Objects {
            secrets: [("registry-db".to_owned(), secret)].into(),
            config_maps: [("registry".to_owned(), map)].into(),
        }
    }

    fn status(phase: Phase, init: Vec<ContainerPlan>, containers: Vec<ContainerPlan>) -> PodPlan {
        PodPlan::Status(PodStatusPlan {
            phase,
            init_containers: init,
            containers,
        })
    }

    fn waiting(reason: &str, message: Option<&str>) -> ContainerPlan {
        ContainerPlan::waiting(reason, message.map(str::to_owned))
    }

    fn crashing(restarts: i32, message: Option<&str>) -> ContainerPlan {
        ContainerPlan::CrashLooping {
            restarts,
            message: message.map(str::to_owned),
        }
    }

    fn ended(exit_code: i32, message: Option<&str>) -> ContainerPlan {
        ContainerPlan::Terminated {
            exit_code,
            message: message.map(str::to_owned),
        }
    }

    use ContainerPlan::Running;

    #[test]
    fn a_normal_pod_waits_then_runs_ready() {
        let p = deployment_pod("r/registry:v1.0.0-gitlab");
        assert_eq!(plan_at(&p, SOON), PodPlan::NotStarted);
        assert_eq!(
            plan_at(&p, LATER),
            status(Phase::Running, vec![], vec![Running])
        );
    }

    #[test]
    fn a_crashloop_pod_never_gets_ready_and_restarts_more_over_time() {
        let p = deployment_pod("r/registry:v2-crashloop");
        assert_eq!(
            plan_at(&p, LATER),
            status(Phase::Running, vec![], vec![crashing(1, None)])
        );
        assert_eq!(
            plan_at(&p, Duration::from_secs(7)),
            status(Phase::Running, vec![], vec![crashing(4, None)])
        );
    }

    #[test]
    fn a_job_pod_succeeds_unless_its_tag_or_arguments_say_fail() {
        for (image, args, phase, exit_code) in [
            ("r/migrate:v1", &["true"][..], Phase::Succeeded, 0),
            ("r/migrate:v1-fail", &[], Phase::Failed, 1),
            ("r/migrate:v1", &["--fail"], Phase::Failed, 1),
        ] {
            assert_eq!(
                plan_at(&job_pod(image, args), LATER),
                status(phase, vec![], vec![ended(exit_code, None)]),
                "{image} {args:?}"
            );
        }
    }

    #[test]
    fn a_job_pod_runs_as_long_as_its_runs_for_word_says_then_ends() {
        let config = KubeletConfig::default();
        let running = config.ready_after + Duration::from_millis(1900);
        let ended_at = config.ready_after + Duration::from_secs(2);
        let pod = job_pod("r/migrate:v1", &["up", "runs-for-ms=2000"]);
        assert_eq!(
            plan_at(&pod, running),
            status(Phase::Running, vec![], vec![Running])
        );
        assert_eq!(
            plan_at(&pod, ended_at),
            status(Phase::Succeeded, vec![], vec![ended(0, None)])
        );
        let failing = job_pod("r/migrate:v1", &["--fail", "runs-for-ms=2000"]);
        assert_eq!(
            plan_at(&failing, running),
            status(Phase::Running, vec![], vec![Running])
        );
        assert_eq!(
            plan_at(&failing, ended_at),
            status(Phase::Failed, vec![], vec![ended(1, None)])
        );
    }

    fn with_init(owner: &str, init_image: &str, init_args: &[&str], image: &str) -> Pod {
        let restart = if owner == "Job" { "Never" } else { "Always" };
        owned_pod(
            owner,
            &json!({"restartPolicy": restart,
                "initContainers": [{"name": "init", "image": init_image, "args": init_args}],
                "containers": [{"name": "c", "image": image}]}),
        )
    }

    #[test]
    fn init_containers_complete_first_or_hold_the_pod_pending() {
        let good = "r/registry:v3.0.0-gitlab";
        for (p, expected) in [
            (
                with_init("ReplicaSet", good, &[], good),
                status(Phase::Running, vec![ended(0, None)], vec![Running]),
            ),
            (
                with_init(
                    "ReplicaSet",
                    "r/registry:v3.0.0-crashloop-gitlab",
                    &[],
                    good,
                ),
                status(
                    Phase::Pending,
                    vec![crashing(1, None)],
                    vec![waiting(POD_INITIALIZING, None)],
                ),
            ),
            (
                with_init("ReplicaSet", good, &[], "r/registry:v1-crashloop"),
                status(
                    Phase::Running,
                    vec![ended(0, None)],
                    vec![crashing(1, None)],
                ),
            ),
            (
                with_init("Job", good, &[], good),
                status(Phase::Succeeded, vec![ended(0, None)], vec![ended(0, None)]),
            ),
            (
                with_init("Job", "r/registry:v1-fail", &[], good),
                status(
                    Phase::Failed,
                    vec![ended(1, None)],
                    vec![waiting(POD_INITIALIZING, None)],
                ),
            ),
            (
                with_init("Job", good, &["migrate", "--fail"], good),
                status(
                    Phase::Failed,
                    vec![ended(1, None)],
                    vec![waiting(POD_INITIALIZING, None)],
                ),
            ),
        ] {
            assert_eq!(plan_at(&p, LATER), expected, "{:?}", p.spec);
        }
    }

    #[test]
    fn a_job_pods_init_container_that_runs_for_a_while_delays_the_containers() {
        let p = with_init("Job", "r/m:v1", &["runs-for-ms=1000"], "r/m:v1");
        let ready_after = KubeletConfig::default().ready_after;
        assert_eq!(
            plan_at(&p, ready_after + Duration::from_millis(500)),
            status(
                Phase::Pending,
                vec![Running],
                vec![waiting(POD_INITIALIZING, None)]
            )
        );
        assert_eq!(
            plan_at(&p, ready_after + Duration::from_millis(1100)),
            status(Phase::Succeeded, vec![ended(0, None)], vec![ended(0, None)])
        );
    }

    #[test]
    fn a_second_init_container_waits_for_the_first() {
        let p = owned_pod(
            "ReplicaSet",
            &json!({"initContainers": [
                    {"name": "a", "image": "r/a:v1-crashloop"}, {"name": "b", "image": "r/b:v1"}],
                "containers": [{"name": "c", "image": "r/c:v1"}]}),
        );
        assert_eq!(
            plan_at(&p, LATER),
            status(
                Phase::Pending,
                vec![crashing(1, None), waiting(POD_INITIALIZING, None)],
                vec![waiting(POD_INITIALIZING, None)]
            )
        );
    }

    #[test]
    fn images_are_checked_before_anything_starts() {
        let digest = manifest_digest("gitlab/registry", "v3.1.0-gitlab");
        let pinned = format!("registry.example.com/gitlab/registry:v3.1.0-gitlab@{digest}");
        let wrong = format!("registry.example.com/gitlab/registry:v3.1.1-gitlab@{digest}");
        let crash_pinned = format!(
            "registry.example.com/gitlab/registry:v3.0.0-crashloop-gitlab@{}",
            manifest_digest("gitlab/registry", "v3.0.0-crashloop-gitlab")
        );
        let untagged = format!(
            "registry.example.com/gitlab/registry@sha256:{}",
            "0".repeat(64)
        );
        let invalid = "registry.example.com/gitlab/registry:v2.0.1+build.7-gitlab";
        let upper = "registry.example.com/GitLab/registry:v1";
        let pull = "registry.example.com/gitlab/registry:v2-pullfail";
        let missing = "registry.example.com/gitlab/registry:v9-missing";
        let invalid_message = format!(
            "Failed to apply default image tag \"{invalid}\": couldn't parse image reference \"{invalid}\": invalid reference format"
        );
        let upper_message = format!(
            "Failed to apply default image tag \"{upper}\": couldn't parse image reference \"{upper}\": invalid reference format: repository name must be lowercase"
        );
        let not_found = format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{pull}\": not found"
        );
        let unknown = |image: &str| {
            format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": manifest unknown: manifest unknown"
            )
        };
        let back_off = |image: &str| format!("Back-off pulling image \"{image}\"");
        let config = KubeletConfig::default();
        let first = config.ready_after;
        let second = config.ready_after + config.crash_every;
        for (image, at, expected) in [
            (pinned.as_str(), first, Running),
            (untagged.as_str(), first, Running),
            (crash_pinned.as_str(), first, crashing(1, None)),
            (
                invalid,
                first,
                waiting(INVALID_IMAGE_NAME, Some(&invalid_message)),
            ),
            (
                invalid,
                second,
                waiting(INVALID_IMAGE_NAME, Some(&invalid_message)),
            ),
            (
                upper,
                first,
                waiting(INVALID_IMAGE_NAME, Some(&upper_message)),
            ),
            (pull, first, waiting(ERR_IMAGE_PULL, Some(&not_found))),
            (
                pull,
                second,
                waiting(IMAGE_PULL_BACK_OFF, Some(&back_off(pull))),
            ),
            (
                pull,
                second + config.crash_every,
                waiting(ERR_IMAGE_PULL, Some(&not_found)),
            ),
            (
                missing,
                first,
                waiting(ERR_IMAGE_PULL, Some(&unknown(missing))),
            ),
            (
                wrong.as_str(),
                first,
                waiting(ERR_IMAGE_PULL, Some(&unknown(&wrong))),
            ),
            (
                wrong.as_str(),
                second,
                waiting(IMAGE_PULL_BACK_OFF, Some(&back_off(&wrong))),
            ),
        ] {
            let phase = if matches!(expected, ContainerPlan::Waiting { .. }) {
                Phase::Pending
            } else {
                Phase::Running
            };
            assert_eq!(
                plan_at(&deployment_pod(image), at),
                status(phase, vec![], vec![expected]),
                "{image}"
            );
        }
    }

    #[test]
    fn the_image_id_names_the_digest_the_image_was_pulled_by() {
        let digest = manifest_digest("gitlab/registry", "v1");
        assert_eq!(
            image_id("registry.example.com/gitlab/registry:v1"),
            format!("registry.example.com/gitlab/registry@{digest}")
        );
        assert_eq!(
            image_id(&format!("registry.example.com/gitlab/registry:v1@{digest}")),
            format!("registry.example.com/gitlab/registry@{digest}")
        );
        assert_eq!(
            image_id("nginx"),
            format!("nginx@{}", manifest_digest("nginx", "latest"))
        );
    }

    fn registry_pod(owner: &str, container: &Value, volumes: &Value) -> Pod {
        let restart = if owner == "Job" { "Never" } else { "Always" };
        owned_pod(
            owner,
            &json!({"restartPolicy": restart, "volumes": volumes, "containers": [container]}),
        )
    }

    #[test]
    fn configuration_that_does_not_resolve_keeps_the_container_waiting() {
        let env = |name: &str, key: &str| {
            json!({"name": "registry", "image": "r/registry:v1", "env": [
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}]})
        };
        let config_volume = |name: &str| json!([{"name": "config", "configMap": {"name": name}}]);
        let mounted = json!({"name": "registry", "image": "r/registry:v1",
            "volumeMounts": [{"name": "config", "mountPath": "/etc/docker/registry"}]});
        for (container, volumes, expected) in [
            (env("registry-db", "password"), json!([]), Running),
            (
                env("nope", "password"),
                json!([]),
                waiting(
                    CREATE_CONTAINER_CONFIG_ERROR,
                    Some(r#"secret "nope" not found"#),
                ),
            ),
            (
                env("registry-db", "nope"),
                json!([]),
                waiting(
                    CREATE_CONTAINER_CONFIG_ERROR,
                    Some("couldn't find key nope in Secret ns/registry-db"),
                ),
            ),
            (mounted.clone(), config_volume("registry"), Running),
            (
                mounted.clone(),
                config_volume("nope"),
                waiting(CONTAINER_CREATING, None),
            ),
        ] {
            for owner in ["ReplicaSet", "Job"] {
                let p = registry_pod(owner, &container, &volumes);
                let expected = match (&expected, owner) {
                    (Running, "Job") => ended(0, None),
                    _ => expected.clone(),
                };
                let phase = match &expected {
                    ContainerPlan::Waiting { .. } => Phase::Pending,
                    ContainerPlan::Terminated { .. } => Phase::Succeeded,
                    _ => Phase::Running,
                };
                assert_eq!(
                    plan_at(&p, LATER),
                    status(phase, vec![], vec![expected]),
                    "{owner} {container} {volumes}"
                );
            }
        }
    }

    #[test]
    fn a_volume_that_cannot_mount_holds_init_containers_too() {
        let p = owned_pod(
            "ReplicaSet",
            &json!({"volumes": [{"name": "config", "configMap": {"name": "nope"}}],
                "initContainers": [{"name": "init", "image": "r/i:v1"}],
                "containers": [{"name": "c", "image": "r/c:v1",
                    "volumeMounts": [{"name": "config", "mountPath": "/config"}]}]}),
        );
        assert_eq!(
            plan_at(&p, LATER),
            status(
                Phase::Pending,
                vec![waiting(POD_INITIALIZING, None)],
                vec![waiting(POD_INITIALIZING, None)]
            )
        );
    }

    #[test]
    fn unmet_requirements_fail_a_job_pod_and_crash_loop_any_other() {
        let registry = |args: &[&str], env: &Value, mounts: &Value| {
            json!({"name": "registry", "image": "r/registry:v1", "args": args, "env": env,
                "volumeMounts": mounts})
        };
        let password = json!([{"name": "REGISTRY_DATABASE_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "registry-db", "key": "password"}}}]);
        let volumes = json!([{"name": "config", "configMap": {"name": "registry"}}]);
        let mounts = json!([{"name": "config", "mountPath": "/etc/docker/registry"}]);
        let needs = [
            "serve",
            "requires-env=REGISTRY_DATABASE_PASSWORD",
            "requires-file=/etc/docker/registry/config.yml",
        ];
        for (container, unmet) in [
            (registry(&needs, &password, &mounts), None),
            (
                registry(&needs, &json!([]), &mounts),
                Some("REGISTRY_DATABASE_PASSWORD is not set"),
            ),
            (
                registry(&needs, &password, &json!([])),
                Some("open /etc/docker/registry/config.yml: no such file or directory"),
            ),
            (
                // the words are read after $(VAR) expansion
                registry(
                    &["requires-file=$(CONFIG)"],
                    &json!([{"name": "CONFIG", "value": "/etc/docker/registry/config.yml"}]),
                    &mounts,
                ),
                None,
            ),
        ] {
            let job = registry_pod("Job", &container, &volumes);
            let expected = match unmet {
                None => status(Phase::Succeeded, vec![], vec![ended(0, None)]),
                Some(m) => status(Phase::Failed, vec![], vec![ended(1, Some(m))]),
            };
            assert_eq!(plan_at(&job, LATER), expected, "{container}");
            let deployment = registry_pod("ReplicaSet", &container, &volumes);
            let expected = match unmet {
                None => status(Phase::Running, vec![], vec![Running]),
                Some(m) => status(Phase::Running, vec![], vec![crashing(1, Some(m))]),
            };
            assert_eq!(plan_at(&deployment, LATER), expected, "{container}");
        }
    }

    #[test]
    fn a_file_an_init_container_writes_is_there_for_the_containers() {
        let pod_writing = |writes: &str| {
            owned_pod(
                "Job",
                &json!({"restartPolicy": "Never",
                    "volumes": [{"name": "shared", "emptyDir": {}}],
                    "initContainers": [{"name": "configure", "image": "r/registry:v1",
                        "args": [writes],
                        "volumeMounts": [{"name": "shared", "mountPath": "/config"}]}],
                    "containers": [{"name": "migrate", "image": "r/registry:v1",
                        "args": ["requires-file=/etc/docker/registry/config.yml"],
                        "volumeMounts": [{"name": "shared", "mountPath": "/etc/docker/registry"}]}]}),
            )
        };
        assert_eq!(
            plan_at(&pod_writing("writes-file=/config/config.yml"), LATER),
            status(Phase::Succeeded, vec![ended(0, None)], vec![ended(0, None)])
        );
        assert_eq!(
            plan_at(&pod_writing("writes-file=/config/other.yml"), LATER),
            status(
                Phase::Failed,
                vec![ended(0, None)],
                vec![ended(
                    1,
                    Some("open /etc/docker/registry/config.yml: no such file or directory")
                )]
            )
        );
    }

    #[test]
    fn the_phase_follows_the_kubelets_rule() {
        let w = || waiting(CONTAINER_CREATING, None);
        for (job, init, containers, phase) in [
            (false, vec![], vec![Running, w()], Phase::Pending),
            (
                false,
                vec![],
                vec![Running, crashing(1, None)],
                Phase::Running,
            ),
            (false, vec![], vec![crashing(1, None)], Phase::Running),
            (false, vec![crashing(1, None)], vec![w()], Phase::Pending),
            (true, vec![ended(1, None)], vec![w()], Phase::Failed),
            (true, vec![Running], vec![w()], Phase::Pending),
            (true, vec![], vec![Running, ended(0, None)], Phase::Running),
            (
                true,
                vec![],
                vec![ended(0, None), ended(0, None)],
                Phase::Succeeded,
            ),
            (
                true,
                vec![],
                vec![ended(0, None), ended(1, None)],
                Phase::Failed,
            ),
        ] {
            assert_eq!(
                phase_of(job, &init, &containers),
                phase,
                "{init:?} {containers:?}"
            );
        }
    }

    fn phase_of(job: bool, init: &[ContainerPlan], containers: &[ContainerPlan]) -> Phase {
        phase(job, init, containers)
    }

    #[test]
    fn the_patch_for_a_plan_reads_back_as_that_plan() {
        let two = |owner: &str| {
            owned_pod(
                owner,
                &json!({"initContainers": [{"name": "i", "image": "r:v1"}],
                    "containers": [{"name": "a", "image": "r:v1"}, {"name": "b", "image": "r:v1"}]}),
            )
        };
        let message = Some("REGISTRY_DATABASE_PASSWORD is not set");
        let cases: Vec<(Pod, PodPlan)> = vec![
            (
                deployment_pod("r:v1"),
                status(Phase::Running, vec![], vec![Running]),
            ),
            (
                deployment_pod("r:v1-crashloop"),
                status(Phase::Running, vec![], vec![crashing(3, None)]),
            ),
            (
                deployment_pod("r:v1"),
                status(Phase::Running, vec![], vec![crashing(2, message)]),
            ),
            (
                job_pod("r:v1", &[]),
                status(Phase::Succeeded, vec![], vec![ended(0, None)]),
            ),
            (
                job_pod("r:v1-fail", &[]),
                status(Phase::Failed, vec![], vec![ended(1, message)]),
            ),
            (
                deployment_pod("r:v1"),
                status(
                    Phase::Pending,
                    vec![],
                    vec![waiting(
                        CREATE_CONTAINER_CONFIG_ERROR,
                        Some("secret \"x\" not found"),
                    )],
                ),
            ),
            (
                deployment_pod("r:v1"),
                status(
                    Phase::Pending,
                    vec![],
                    vec![waiting(CONTAINER_CREATING, None)],
                ),
            ),
            (
                two("ReplicaSet"),
                status(
                    Phase::Pending,
                    vec![crashing(4, None)],
                    vec![
                        waiting(POD_INITIALIZING, None),
                        waiting(POD_INITIALIZING, None),
                    ],
                ),
            ),
            (
                two("ReplicaSet"),
                status(
                    Phase::Pending,
                    vec![ended(0, None)],
                    vec![
                        Running,
                        waiting(IMAGE_PULL_BACK_OFF, Some("Back-off pulling image \"r:v1\"")),
                    ],
                ),
            ),
            (
                two("Job"),
                status(
                    Phase::Failed,
                    vec![ended(1, None)],
                    vec![
                        waiting(POD_INITIALIZING, None),
                        waiting(POD_INITIALIZING, None),
                    ],
                ),
            ),
        ];
        for (p, wanted) in cases {
            let PodPlan::Status(s) = &wanted else {
                unreachable!("every case is a status")
            };
            let mut patched = p.clone();
            let status = status_patch(&p, s, &now())["status"].clone();
            patched.status = Some(serde_json::from_value(status).expect("status"));
            assert_eq!(observed(&patched), Some(wanted));
        }
    }

    fn condition<'a>(patch: &'a Value, kind: &str) -> &'a Value {
        patch["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == kind))
            .expect("condition")
    }

    #[test]
    fn conditions_say_which_containers_are_not_ready_or_not_initialized() {
        let p = owned_pod(
            "ReplicaSet",
            &json!({"initContainers": [{"name": "configure", "image": "r:v1"}],
                "containers": [{"name": "registry", "image": "r:v1"}, {"name": "sidecar", "image": "s:v1"}]}),
        );
        let plan = PodStatusPlan {
            phase: Phase::Pending,
            init_containers: vec![crashing(1, None)],
            containers: vec![
                waiting(POD_INITIALIZING, None),
                waiting(POD_INITIALIZING, None),
            ],
        };
        let patch = status_patch(&p, &plan, &now());
        let initialized = condition(&patch, "Initialized");
        assert_eq!(initialized["status"], "False");
        assert_eq!(initialized["reason"], "ContainersNotInitialized");
        assert_eq!(
            initialized["message"],
            "containers with incomplete status: [configure]"
        );
        let ready = condition(&patch, "Ready");
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(
            ready["message"],
            "containers with unready status: [registry sidecar]"
        );
        let waiting_status = &patch["status"]["containerStatuses"][0];
        assert_eq!(waiting_status["imageID"], "");
        assert!(waiting_status.get("containerID").is_none());
        let ran = PodStatusPlan {
            phase: Phase::Running,
            init_containers: vec![ended(0, None)],
            containers: vec![Running, Running],
        };
        let patch = status_patch(&p, &ran, &now());
        assert_eq!(condition(&patch, "Initialized")["status"], "True");
        assert_eq!(condition(&patch, "Ready")["status"], "True");
        assert_eq!(patch["status"]["initContainerStatuses"][0]["ready"], true);
        assert_eq!(
            patch["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }

    #[test]
    fn only_a_pod_with_nothing_left_to_retry_is_settled() {
        for (init, containers, settled) in [
            (vec![], vec![Running], true),
            (vec![ended(0, None)], vec![ended(1, None)], true),
            (vec![], vec![crashing(1, None)], false),
            (
                vec![crashing(1, None)],
                vec![waiting(POD_INITIALIZING, None)],
                false,
            ),
            (
                vec![],
                vec![Running, waiting(CREATE_CONTAINER_CONFIG_ERROR, None)],
                false,
            ),
        ] {
            let plan = PodStatusPlan {
                phase: Phase::Running,
                init_containers: init,
                containers,
            };
            assert_eq!(plan.is_settled(), settled, "{plan:?}");
        }
    }
}
