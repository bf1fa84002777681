//! Deployments: reading one, server-side applying the images and annotations tagship owns, and
//! watching a rollout to its end by `kubectl rollout status`'s rule.
//!
//! # Caveats
//!
//! Server-side apply removes a field the same field manager applied before and no longer sends.
//! tagship therefore never sends `replicas` or anything else it does not own, and re-sends, with
//! their live values, the container images and annotations it applied earlier but is not asked
//! to change now (read from the object's `managedFields`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};

use super::pods::{PodFailure, PodView, pod_failure};
use super::retry;
use super::watch::{follow, read_named, watch_each, watch_params};
use super::{ClusterError, FIELD_MANAGER, KubeCluster, Object};

/// Applies [`KubeCluster::apply_images_each`] keeps in flight at once (each is one connection
/// of the HTTP/1.1 client).
pub const APPLIES_IN_FLIGHT: usize = 8;

/// Reason the deployment controller gives when a rollout missed `progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// What tagship needs to know about a live Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveDeployment {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.generation`: bumped by the server on every spec change.
    pub generation: i64,
    /// `status.observedGeneration`: the generation the controller has acted on.
    pub observed_generation: i64,
    /// `spec.replicas`: how many replicas are wanted (1 when unset).
    pub replicas: i32,
    /// `spec.paused` (`kubectl rollout pause`): the controller does not roll out changes.
    pub paused: bool,
    /// `status.updatedReplicas`: replicas running the current pod template.
    pub updated: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `status.replicas`: all replicas, old and new template.
    pub total: i32,
    /// Image of each container of the pod template (not init containers), by container name.
    pub images: BTreeMap<String, String>,
    /// Image of each init container of the pod template, by container name.
    pub init_images: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// The message of a `Progressing` condition with reason `ProgressDeadlineExceeded`, if any.
    pub progress_deadline_exceeded: Option<String>,
    /// Who last set the image of each container and init container, by name, from
    /// `managedFields` (only from reads that decode them: [`KubeCluster::deployments_owned`]).
    pub image_owners: BTreeMap<String, ImageOwner>,
}

/// The field manager that owns a container's image (the one that set it last), and when it
/// wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageOwner {
    /// The field manager, e.g. `tagship`, `helm`, `kubectl-client-side-apply`.
    pub manager: String,
    /// When that manager last wrote the object (RFC 3339), if the server said.
    pub time: Option<String>,
}

/// Where a rollout stands, by `kubectl rollout status`'s rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    /// Every wanted replica runs the current template and is available; no old replicas remain.
    Complete,
    /// Still rolling out; the message says what it waits for.
    Progressing {
        /// What the rollout waits for, e.g. `1 of 2 updated replicas available`.
        message: String,
    },
    /// The controller gave up on the rollout.
    Failed {
        /// The condition's reason, [`PROGRESS_DEADLINE_EXCEEDED`].
        reason: String,
        /// The condition's message.
        message: String,
    },
}

/// How a [`KubeCluster::wait_rollout`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutOutcome {
    /// The rollout is complete.
    Complete,
    /// The rollout failed.
    Failed {
        /// The condition's reason, [`PROGRESS_DEADLINE_EXCEEDED`].
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// The wait's timeout passed first; the rollout may still complete or fail.
    TimedOut,
    /// A pod of the rollout cannot run (it crash-loops, cannot pull its image, cannot be
    /// configured): the release will not become available.
    PodFailed(PodFailure),
    /// The wait ended before this one finished, because another Deployment of the wait failed.
    Unfinished,
}

/// What a [`KubeCluster::apply_images`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The Deployment already had these images and annotations; nothing was sent.
    Unchanged,
    /// The Deployment was changed.
    Changed {
        /// The Deployment's `metadata.generation` after the change.
        generation: i64,
        /// Its `metadata.resourceVersion` after the change.
        resource_version: String,
    },
    /// Dry run: the server accepted the change and stored nothing.
    WouldChange,
}

impl LiveDeployment {
    /// The image of container `name`, a regular or an init container.
    pub fn image_of(&self, name: &str) -> Option<&String> {
        self.images.get(name).or_else(|| self.init_images.get(name))
    }

    /// Every container and init container with its image: the init containers first, as the
    /// pod runs them.
    pub fn all_images(&self) -> impl Iterator<Item = (&String, &String)> {
        self.init_images.iter().chain(&self.images)
    }

    /// Extracts the fields tagship uses from a Deployment as the server returned it.
    pub fn from_deployment(deployment: &Deployment) -> Self {
        Self::from_view(&ApplyView::from(deployment))
    }

    fn from_view<const OWNED: bool>(deployment: &DeploymentView<OWNED>) -> Self {
        let meta = &deployment.metadata.meta;
        let status = deployment.status.as_ref();
        let spec = deployment.spec.as_ref();
        let pod = spec.and_then(|spec| spec.template.spec.as_ref());
        let images_of = |containers: &[ViewContainer]| {
            containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        };
        let images = pod.map(|p| images_of(&p.containers)).unwrap_or_default();
        let init_images = pod
            .map(|p| images_of(&p.init_containers))
            .unwrap_or_default();
        let progress_deadline_exceeded = status
            .into_iter()
            .flat_map(|s| &s.conditions)
            .find(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
            })
            .map(|c| c.message.clone().unwrap_or_default());
        Self {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            generation: meta.generation.unwrap_or(0),
            observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            paused: spec.is_some_and(|s| s.paused),
            updated: status.and_then(|s| s.updated_replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
            total: status.and_then(|s| s.replicas).unwrap_or(0),
            images,
            init_images,
            annotations: meta.annotations.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            progress_deadline_exceeded,
            image_owners: deployment.metadata.image_owners.clone(),
        }
    }

    /// `kubectl rollout status`'s rule. A status the controller wrote for an older generation
    /// never counts, which is what keeps a just-changed Deployment from looking complete.
    pub fn rollout_state(&self) -> RolloutState {
        if self.observed_generation < self.generation {
            return RolloutState::Progressing {
                message: format!(
                    "waiting for the controller to observe generation {} (it has seen {})",
                    self.generation, self.observed_generation
                ),
            };
        }
        if let Some(message) = &self.progress_deadline_exceeded {
            return RolloutState::Failed {
                reason: PROGRESS_DEADLINE_EXCEEDED.to_owned(),
                message: message.clone(),
            };
        }
        let message = if self.updated < self.replicas {
            format!(
                "{} of {} updated replicas are ready",
                self.updated, self.replicas
            )
        } else if self.total > self.updated {
            format!(
                "{} old replicas are pending termination",
                self.total - self.updated
            )
        } else if self.available < self.updated {
            format!(
                "{} of {} updated replicas are available",
                self.available, self.updated
            )
        } else {
            return RolloutState::Complete;
        };
        RolloutState::Progressing { message }
    }
}

/// A Deployment's pod template, as a migration Job's pod is built from it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodTemplate {
    /// `spec.template.spec`, as the server returned it.
    pub spec: Value,
    /// `spec.selector.matchLabels`: what the Deployment's pods carry (a Job's must not).
    pub selector: BTreeMap<String, String>,
}

impl KubeCluster {
    /// The pod template of Deployment `name` in `ns` (one GET of the whole object).
    ///
    /// # Errors
    ///
    /// [`ClusterError::NotFound`] when the Deployment does not exist.
    pub async fn pod_template(&self, ns: &str, name: &str) -> Result<PodTemplate, ClusterError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let object = Object::new("deployment", ns, name);
        let deployment = retry::retry(&self.server, || api.get_opt(name))
            .await
            .map_err(|err| object.api_error("read", err))?
            .ok_or_else(|| object.not_found())?;
        let spec = deployment.spec.unwrap_or_default();
        Ok(PodTemplate {
            spec: serde_json::to_value(spec.template.spec.unwrap_or_default()).map_err(|err| {
                ClusterError::Corrupt {
                    what: format!("the pod template of {object}"),
                    reason: err.to_string(),
                }
            })?,
            selector: spec.selector.match_labels.unwrap_or_default(),
        })
    }

    /// The Deployment `name` in `ns`, `None` if it does not exist.
    pub async fn deployment(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<LiveDeployment>, ClusterError> {
        Ok(self.deployments(ns, &[name]).await?.remove(name))
    }

    /// Those of the Deployments `names` in `ns` that exist, by name: one GET for one name, one
    /// LIST of the namespace for more, so the number of requests does not grow with theirs.
    pub async fn deployments(
        &self,
        ns: &str,
        names: &[&str],
    ) -> Result<BTreeMap<String, LiveDeployment>, ClusterError> {
        Ok(self
            .read_each::<DeploymentView>(ns, names)
            .await?
            .iter()
            .map(|(name, d)| (name.clone(), LiveDeployment::from_view(d)))
            .collect())
    }

    /// [`Self::deployments`] with who owns each container's image (`image_owners`, from
    /// `managedFields`, which cost more to decode): for telling drift.
    pub async fn deployments_owned(
        &self,
        ns: &str,
        names: &[&str],
    ) -> Result<BTreeMap<String, LiveDeployment>, ClusterError> {
        Ok(self
            .read_each::<ApplyView>(ns, names)
            .await?
            .iter()
            .map(|(name, d)| (name.clone(), LiveDeployment::from_view(d)))
            .collect())
    }

    /// Those of the Deployments `names` in `ns` that exist, decoded as `K` (a
    /// [`DeploymentView`]), by name (see [`read_named`]).
    async fn read_each<K>(
        &self,
        ns: &str,
        names: &[&str],
    ) -> Result<BTreeMap<String, K>, ClusterError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        Ok(read_named(&api, &self.server, "deployment", ns, names)
            .await?
            .0)
    }

    /// Server-side apply, field manager [`FIELD_MANAGER`], of only the images of the named
    /// containers (`container name → image`) and the given annotations on the Deployment.
    ///
    /// Nothing else is sent, so replicas (whoever scaled them), other containers, labels, env and
    /// every other field keep their values and their owners. Images and annotations tagship
    /// applied before and does not name now are re-sent with their live values, so they are
    /// neither removed nor changed (see the module's caveats).
    ///
    /// The apply is forced: tagship is the authority on the images it deploys, and they were
    /// first set by whoever created the Deployment (another field manager), so an unforced apply
    /// would be refused with a conflict on the first deploy. Forcing moves the ownership of
    /// exactly the sent fields to tagship and of nothing else.
    ///
    /// When the images and annotations already have these values nothing is sent, so a re-run
    /// leaves the `resourceVersion` unchanged. `dry_run` asks the server to validate the apply
    /// (`dryRun=All`) and stores nothing.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NotFound`] when the Deployment does not exist (an apply would create it);
    /// [`ClusterError::UnknownContainer`] when a named container is not in its pod template (an
    /// apply would add a container).
    pub async fn apply_images(
        &self,
        ns: &str,
        name: &str,
        images: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
        dry_run: bool,
    ) -> Result<ApplyOutcome, ClusterError> {
        let outcomes = self
            .apply_images_each(ns, &[name], |_| images.clone(), annotations, dry_run)
            .await?;
        outcomes
            .into_iter()
            .next()
            .ok_or_else(|| Object::new("deployment", ns, name).not_found())
    }

    /// [`Self::apply_images`] on the Deployments `names` of `ns`, each with the
    /// `container → image` map `images_of` makes from its live state: one read for them all
    /// (which is also what `images_of` sees), then at most [`APPLIES_IN_FLIGHT`] applies at once.
    /// Every apply is tried; the outcomes are in the order of `names`, and the first failure is
    /// the error.
    ///
    /// # Errors
    ///
    /// As [`Self::apply_images`], for the first Deployment that failed.
    pub async fn apply_images_each(
        &self,
        ns: &str,
        names: &[&str],
        images_of: impl Fn(&LiveDeployment) -> BTreeMap<String, String> + Sync,
        annotations: &BTreeMap<String, String>,
        dry_run: bool,
    ) -> Result<Vec<ApplyOutcome>, ClusterError> {
        let live = self.read_each::<ApplyView>(ns, names).await?;
        // The answer to an apply is decoded as the view: only its version and generation count.
        let api: Api<DeploymentView> = Api::namespaced(self.client.clone(), ns);
        let images_of = &images_of;
        let applies = names.iter().map(|name| {
            let (api, live) = (&api, live.get(*name));
            async move {
                let object = Object::new("deployment", ns, name);
                let live = live.ok_or_else(|| object.not_found())?;
                let current = LiveDeployment::from_view(live);
                let images = images_of(&current);
                let owned = &live.metadata.owned;
                let Some(body) = apply_body(&current, owned, &images, annotations)? else {
                    return Ok(ApplyOutcome::Unchanged);
                };
                let mut params = PatchParams::apply(FIELD_MANAGER).force();
                params.dry_run = dry_run;
                let patch = Patch::Apply(&body);
                let applied = retry::retry(&self.server, || api.patch(name, &params, &patch))
                    .await
                    .map_err(|err| object.api_error("apply images to", err))?;
                if dry_run {
                    return Ok(ApplyOutcome::WouldChange);
                }
                let after = LiveDeployment::from_view(&applied);
                if Some(&after.resource_version) == live.meta().resource_version.as_ref() {
                    return Ok(ApplyOutcome::Unchanged);
                }
                Ok(ApplyOutcome::Changed {
                    generation: after.generation,
                    resource_version: after.resource_version,
                })
            }
        });
        let outcomes: Vec<Result<ApplyOutcome, ClusterError>> = futures::stream::iter(applies)
            .buffered(APPLIES_IN_FLIGHT)
            .collect()
            .await;
        outcomes.into_iter().collect()
    }

    /// Watches the Deployment until its rollout is complete by `kubectl rollout status`'s rule,
    /// has failed (`Progressing` condition with reason `ProgressDeadlineExceeded`), or `timeout`
    /// passes. `progress` is called with the first state seen and on every change after it.
    ///
    /// A watch, not polling; a closed or failed watch is resumed from the last resourceVersion
    /// (failing watch requests are ridden out for 30 s, see [`ClusterError::Api`]). A rollout
    /// whose status does not change for minutes is waited for as long as `timeout` allows: a
    /// quiet watch is not a failing one, so the rollout ends only by the progress deadline,
    /// `timeout`, or (in [`Self::wait_rollouts`]) a pod that cannot run.
    pub async fn wait_rollout(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
        progress: &mut (dyn FnMut(&LiveDeployment) + Send),
    ) -> Result<RolloutOutcome, ClusterError> {
        let mut outcomes =
            Box::pin(self.wait_rollouts(ns, &[name], timeout, None, progress)).await?;
        Ok(outcomes.remove(name).unwrap_or(RolloutOutcome::TimedOut))
    }

    /// [`Self::wait_rollout`] for several Deployments of `ns` at once, with one watch (see
    /// [`watch_each`]): each one's outcome by name; those still rolling out when `timeout`
    /// passes are [`RolloutOutcome::TimedOut`]. `progress` is called per Deployment.
    ///
    /// With `fail_fast` (the restarts allowed), the pods of the namespace are watched too, and
    /// the wait ends at the first pod of a Deployment's current template that cannot run (see
    /// [`pod_failure`]): that Deployment has failed, with the pod's reason and message, and
    /// those not finished yet are [`RolloutOutcome::Unfinished`]. Without the permission to
    /// watch pods, the wait goes on without it (said once, as a warning). Both watches are
    /// resumed, ridden out and bounded alike (see `watch::follow`).
    pub async fn wait_rollouts(
        &self,
        ns: &str,
        names: &[&str],
        timeout: Duration,
        fail_fast: Option<u32>,
        progress: &mut (dyn FnMut(&LiveDeployment) + Send),
    ) -> Result<BTreeMap<String, RolloutOutcome>, ClusterError> {
        let api: Api<DeploymentView> = Api::namespaced(self.watcher.clone(), ns);
        let state = std::sync::Mutex::new(Rollouts::default());
        let lock = || {
            state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let watch = watch_each(&api, &self.server, "deployment", ns, names, |deployment| {
            let live = LiveDeployment::from_view(deployment);
            let mut state = lock();
            if state
                .last
                .get(&live.name)
                .is_none_or(|seen| !same_state(seen, &live))
            {
                progress(&live);
            }
            let name = live.name.clone();
            let outcome = match live.rollout_state() {
                RolloutState::Complete => Some(RolloutOutcome::Complete),
                RolloutState::Failed { reason, message } => {
                    Some(RolloutOutcome::Failed { reason, message })
                }
                RolloutState::Progressing { .. } => None,
            };
            state.last.insert(name.clone(), live);
            let outcome = outcome.or_else(|| {
                fail_fast
                    .and_then(|allowed| state.judge(&name, allowed))
                    .map(RolloutOutcome::PodFailed)
            });
            match outcome {
                Some(outcome) => {
                    state.outcomes.insert(name, outcome);
                    true
                }
                None => false,
            }
        });
        let pods = async {
            let Some(allowed) = fail_fast else {
                return std::future::pending().await;
            };
            let api: Api<PodView> = Api::namespaced(self.watcher.clone(), ns);
            let mut follower = PodFollower {
                api: &api,
                server: &self.server,
                names,
                allowed,
                state: &state,
                failed: false,
            };
            let params = watch_params();
            let all = Object::new("pods", ns, "*");
            if let Err(e) = follow(&api, &self.server, all, &params, &mut follower).await {
                tracing::warn!(
                    "cannot watch the pods of the rollout in namespace `{ns}` ({}); a failing release is noticed at its progress deadline instead",
                    crate::report::one_line(&e)
                );
                std::future::pending::<()>().await;
            }
        };
        let both = async {
            tokio::select! {
                watched = watch => watched,
                () = pods => Ok(()),
            }
        };
        if let Ok(watched) = Box::pin(tokio::time::timeout(timeout, both)).await {
            watched?;
        }
        let mut outcomes = std::mem::take(&mut lock().outcomes);
        let failed = outcomes.values().any(|o| {
            matches!(
                o,
                RolloutOutcome::Failed { .. } | RolloutOutcome::PodFailed(_)
            )
        });
        for name in names {
            outcomes.entry((*name).to_owned()).or_insert(if failed {
                RolloutOutcome::Unfinished
            } else {
                RolloutOutcome::TimedOut
            });
        }
        Ok(outcomes)
    }
}

/// What a rollout's two watches (its Deployments, their pods) know together.
#[derive(Debug, Default)]
struct Rollouts {
    /// Each Deployment's latest state: its template's images say which pods are the release's.
    last: BTreeMap<String, LiveDeployment>,
    /// The latest state of each pod of the watched Deployments, by pod name.
    pods: BTreeMap<String, PodView>,
    /// The Deployments decided.
    outcomes: BTreeMap<String, RolloutOutcome>,
}

impl Rollouts {
    /// The failure of a pod of `deployment`'s current template, if one cannot run.
    fn judge(&self, deployment: &str, allowed: u32) -> Option<PodFailure> {
        let live = self.last.get(deployment)?;
        // Only a status written for the current generation says which template is current.
        if live.observed_generation < live.generation {
            return None;
        }
        let template: BTreeMap<String, String> = live
            .all_images()
            .map(|(name, image)| (name.clone(), image.clone()))
            .collect();
        self.pods
            .values()
            .filter(|pod| pod.deployment() == Some(deployment) && pod.runs(&template))
            .find_map(|pod| pod_failure(pod, allowed))
    }
}

/// The rollout's pod watch: keeps [`Rollouts::pods`] and is over at the first pod that fails.
struct PodFollower<'a> {
    api: &'a Api<PodView>,
    server: &'a super::Server,
    names: &'a [&'a str],
    allowed: u32,
    state: &'a std::sync::Mutex<Rollouts>,
    failed: bool,
}

impl PodFollower<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Rollouts> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl super::watch::Follower<PodView> for PodFollower<'_> {
    async fn read(&mut self) -> Result<String, ClusterError> {
        let params = kube::api::ListParams::default();
        let ns = self.api.namespace().unwrap_or_default().to_owned();
        let list = retry::retry(self.server, || self.api.list(&params))
            .await
            .map_err(|err| Object::new("pods", &ns, "*").api_error("list", err))?;
        self.lock().pods.clear();
        for pod in &list.items {
            self.changed(pod)?;
        }
        Ok(list.metadata.resource_version.unwrap_or_default())
    }

    fn changed(&mut self, pod: &PodView) -> Result<(), ClusterError> {
        let Some(deployment) = pod.deployment().filter(|d| self.names.contains(d)) else {
            return Ok(());
        };
        let name = pod.meta().name.clone().unwrap_or_default();
        let mut state = self.lock();
        if state.outcomes.contains_key(deployment) {
            return Ok(());
        }
        state.pods.insert(name, pod.clone());
        if let Some(failed) = state.judge(deployment, self.allowed) {
            state
                .outcomes
                .insert(deployment.to_owned(), RolloutOutcome::PodFailed(failed));
            drop(state);
            self.failed = true;
        }
        Ok(())
    }

    fn deleted(&mut self, pod: &PodView) -> Result<(), ClusterError> {
        if let Some(name) = pod.meta().name.as_deref() {
            self.lock().pods.remove(name);
        }
        Ok(())
    }

    fn over(&self) -> bool {
        self.failed
    }
}

/// Equal but for the resourceVersion (which changes on every write, e.g. of managedFields).
fn same_state(a: &LiveDeployment, b: &LiveDeployment) -> bool {
    (&a.name, &a.namespace, a.generation, a.observed_generation)
        == (&b.name, &b.namespace, b.generation, b.observed_generation)
        && (
            a.replicas,
            a.updated,
            a.ready,
            a.available,
            a.total,
            a.paused,
        ) == (
            b.replicas,
            b.updated,
            b.ready,
            b.available,
            b.total,
            b.paused,
        )
        && (&a.images, &a.init_images, &a.annotations)
            == (&b.images, &b.init_images, &b.annotations)
        && a.progress_deadline_exceeded == b.progress_deadline_exceeded
}

/// The parts of a Deployment tagship reads, decoded without the rest: the rollout watch decodes
/// every change of every watched Deployment, and the whole object (its `managedFields`, its
/// conditions' timestamps) costs several times more to decode than these fields. With `OWNED`
/// ([`ApplyView`]), also what tagship's field manager owns, from `managedFields`.
#[derive(Debug, Clone, Default, Deserialize)]
struct DeploymentView<const OWNED: bool = false> {
    #[serde(deserialize_with = "view_meta::<OWNED, _>")]
    metadata: ViewMeta,
    spec: Option<ViewSpec>,
    status: Option<ViewStatus>,
}

/// A Deployment as the apply reads it: a [`DeploymentView`] with what [`FIELD_MANAGER`] owns.
type ApplyView = DeploymentView<true>;

/// `metadata` as [`view_meta`] reads it.
#[derive(Debug, Clone, Default)]
struct ViewMeta {
    /// Its `name`, `namespace`, `generation`, `resourceVersion` and `annotations`.
    meta: ObjectMeta,
    /// What [`FIELD_MANAGER`] applied, from `managedFields` (read only with `OWNED`).
    owned: Owned,
    /// Who last set each container's image (read only with `OWNED`).
    image_owners: BTreeMap<String, ImageOwner>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewStatus {
    observed_generation: Option<i64>,
    replicas: Option<i32>,
    updated_replicas: Option<i32>,
    ready_replicas: Option<i32>,
    available_replicas: Option<i32>,
    #[serde(default)]
    conditions: Vec<ViewCondition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ViewCondition {
    #[serde(rename = "type")]
    type_: String,
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ViewSpec {
    replicas: Option<i32>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    template: ViewTemplate,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ViewTemplate {
    spec: Option<ViewPod>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ViewPod {
    #[serde(default)]
    containers: Vec<ViewContainer>,
    #[serde(default, rename = "initContainers")]
    init_containers: Vec<ViewContainer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ViewContainer {
    name: String,
    image: Option<String>,
}

/// `metadata`, with only the fields [`LiveDeployment`] and the watch use, and with `OWNED`
/// what the apply uses of `managedFields` (skipped otherwise).
fn view_meta<'de, const OWNED: bool, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<ViewMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Meta<M> {
        name: Option<String>,
        namespace: Option<String>,
        generation: Option<i64>,
        resource_version: Option<String>,
        annotations: Option<BTreeMap<String, String>>,
        managed_fields: Option<M>,
    }
    impl<M> Meta<M> {
        fn object_meta(self) -> (ObjectMeta, Option<M>) {
            let meta = ObjectMeta {
                name: self.name,
                namespace: self.namespace,
                generation: self.generation,
                resource_version: self.resource_version,
                annotations: self.annotations,
                ..ObjectMeta::default()
            };
            (meta, self.managed_fields)
        }
    }
    Ok(if OWNED {
        let (meta, managed) = Meta::<Vec<ManagedEntry>>::deserialize(d)?.object_meta();
        let managed = managed.unwrap_or_default();
        let image_owners = image_owners(&managed);
        let owned = owned_by(managed, FIELD_MANAGER);
        ViewMeta {
            meta,
            owned,
            image_owners,
        }
    } else {
        let (meta, _) = Meta::<IgnoredAny>::deserialize(d)?.object_meta();
        ViewMeta {
            meta,
            owned: Owned::default(),
            image_owners: BTreeMap::new(),
        }
    })
}

/// One `managedFields` entry: who, how, and of its `fieldsV1` only what [`Owned`] needs.
#[derive(Debug, Deserialize)]
struct ManagedEntry {
    manager: Option<String>,
    operation: Option<String>,
    /// When the manager last wrote (RFC 3339).
    time: Option<String>,
    #[serde(rename = "fieldsV1")]
    fields: Option<ManagedFields>,
}

/// `fieldsV1`: `f:metadata.f:annotations` and `f:spec.f:template.f:spec.f:containers`.
#[derive(Debug, Default, Deserialize)]
struct ManagedFields {
    #[serde(rename = "f:metadata", default)]
    metadata: ManagedMeta,
    #[serde(rename = "f:spec", default)]
    spec: ManagedSpec,
}

#[derive(Debug, Default, Deserialize)]
struct ManagedMeta {
    #[serde(rename = "f:annotations", default)]
    #[allow(
        clippy::zero_sized_map_values,
        reason = "the keys of a JSON object whose values are not read"
    )]
    annotations: BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct ManagedSpec {
    #[serde(rename = "f:template", default)]
    template: ManagedTemplate,
}

#[derive(Debug, Default, Deserialize)]
struct ManagedTemplate {
    #[serde(rename = "f:spec", default)]
    spec: ManagedPod,
}

#[derive(Debug, Default, Deserialize)]
struct ManagedPod {
    /// By key, e.g. `k:{"name":"registry"}`.
    #[serde(rename = "f:containers", default)]
    containers: BTreeMap<String, ManagedContainer>,
    /// By key, as `containers`.
    #[serde(rename = "f:initContainers", default)]
    init_containers: BTreeMap<String, ManagedContainer>,
}

#[derive(Debug, Default, Deserialize)]
struct ManagedContainer {
    #[serde(rename = "f:image")]
    image: Option<IgnoredAny>,
}

impl From<&Deployment> for ApplyView {
    fn from(d: &Deployment) -> Self {
        let spec = d.spec.as_ref().map(|spec| ViewSpec {
            replicas: spec.replicas,
            paused: spec.paused.unwrap_or(false),
            template: ViewTemplate {
                spec: spec.template.spec.as_ref().map(|pod| {
                    let view = |c: &k8s_openapi::api::core::v1::Container| ViewContainer {
                        name: c.name.clone(),
                        image: c.image.clone(),
                    };
                    ViewPod {
                        containers: pod.containers.iter().map(view).collect(),
                        init_containers: pod.init_containers.iter().flatten().map(view).collect(),
                    }
                }),
            },
        });
        let status = d.status.as_ref().map(|s| ViewStatus {
            observed_generation: s.observed_generation,
            replicas: s.replicas,
            updated_replicas: s.updated_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(|c| ViewCondition {
                    type_: c.type_.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect(),
        });
        // The same reading of `fieldsV1` as the view's own decoding, from the decoded JSON.
        let managed: Vec<ManagedEntry> = d
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|e| ManagedEntry {
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                time: e.time.as_ref().map(|t| t.0.to_string()),
                fields: e
                    .fields_v1
                    .as_ref()
                    .and_then(|f| ManagedFields::deserialize(&f.0).ok()),
            })
            .collect();
        Self {
            metadata: ViewMeta {
                meta: ObjectMeta {
                    name: d.metadata.name.clone(),
                    namespace: d.metadata.namespace.clone(),
                    generation: d.metadata.generation,
                    resource_version: d.metadata.resource_version.clone(),
                    annotations: d.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                },
                image_owners: image_owners(&managed),
                owned: owned_by(managed, FIELD_MANAGER),
            },
            spec,
            status,
        }
    }
}

impl<const OWNED: bool> Resource for DeploymentView<OWNED> {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind((): &()) -> Cow<'_, str> {
        Deployment::kind(&())
    }
    fn group((): &()) -> Cow<'_, str> {
        Deployment::group(&())
    }
    fn version((): &()) -> Cow<'_, str> {
        Deployment::version(&())
    }
    fn plural((): &()) -> Cow<'_, str> {
        Deployment::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata.meta
    }
}

/// The apply of `images` and `annotations` to the Deployment `current`, of which tagship
/// owns `owned`; `None` when they already have these values.
fn apply_body(
    current: &LiveDeployment,
    owned: &Owned,
    images: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Value>, ClusterError> {
    if let Some(container) = images.keys().find(|c| current.image_of(c).is_none()) {
        return Err(ClusterError::UnknownContainer {
            deployment: current.name.clone(),
            namespace: current.namespace.clone(),
            container: container.clone(),
        });
    }
    // A Deployment that already runs these images is left alone, annotations included: they
    // describe the apply that set its images, which stays true (so a rollback after an apply
    // refused part-way touches only what that apply changed).
    if images.iter().all(|(c, i)| current.image_of(c) == Some(i)) {
        return Ok(None);
    }
    // What tagship sends of each list: the images asked for, and those it applied before.
    let send = |live: &BTreeMap<String, String>, owned: &BTreeSet<String>| {
        let mut send: BTreeMap<String, String> = images
            .iter()
            .filter(|(c, _)| live.contains_key(*c))
            .map(|(c, i)| (c.clone(), i.clone()))
            .collect();
        for container in owned {
            if let Some(image) = live.get(container) {
                send.entry(container.clone())
                    .or_insert_with(|| image.clone());
            }
        }
        send
    };
    let send_images = send(&current.images, &owned.containers);
    let send_init_images = send(&current.init_images, &owned.init_containers);
    let mut send_annotations = annotations.clone();
    for key in owned.annotations.iter().cloned() {
        if let Some(value) = current.annotations.get(&key) {
            send_annotations.entry(key).or_insert_with(|| value.clone());
        }
    }
    let mut body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": current.name, "namespace": current.namespace },
    });
    if !send_annotations.is_empty() {
        body["metadata"]["annotations"] = json!(send_annotations);
    }
    let list = |images: &BTreeMap<String, String>| -> Vec<Value> {
        images
            .iter()
            .map(|(name, image)| json!({ "name": name, "image": image }))
            .collect()
    };
    let mut pod = serde_json::Map::new();
    if !send_images.is_empty() {
        pod.insert("containers".into(), json!(list(&send_images)));
    }
    if !send_init_images.is_empty() {
        pod.insert("initContainers".into(), json!(list(&send_init_images)));
    }
    if !pod.is_empty() {
        body["spec"] = json!({ "template": { "spec": pod } });
    }
    Ok(Some(body))
}

/// Container images and annotations a field manager owns through server-side apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Owned {
    containers: BTreeSet<String>,
    init_containers: BTreeSet<String>,
    annotations: BTreeSet<String>,
}

/// Who owns each container's image, by `managedFields`: the entry (of any manager, applied or
/// updated) whose fields hold the container's `f:image`; when several do (shared ownership by
/// applies of the same value), the one that wrote last.
fn image_owners(entries: &[ManagedEntry]) -> BTreeMap<String, ImageOwner> {
    let mut owners: BTreeMap<String, ImageOwner> = BTreeMap::new();
    for entry in entries {
        let Some(fields) = &entry.fields else {
            continue;
        };
        let pod = &fields.spec.template.spec;
        for (key, container) in pod.containers.iter().chain(&pod.init_containers) {
            let Some(name) = container_name(key) else {
                continue;
            };
            if container.image.is_none() {
                continue;
            }
            let owner = ImageOwner {
                manager: entry.manager.clone().unwrap_or_default(),
                time: entry.time.clone(),
            };
            let later = owners
                .get(&name)
                .is_none_or(|seen| seen.time.as_deref() < owner.time.as_deref());
            if later {
                owners.insert(name, owner);
            }
        }
    }
    owners
}

/// The container name of a `managedFields` list key, `k:{"name":"registry"}`.
fn container_name(key: &str) -> Option<String> {
    key.strip_prefix("k:")
        .and_then(|k| serde_json::from_str::<Value>(k).ok())
        .and_then(|k| k["name"].as_str().map(str::to_owned))
}

/// What `manager` applied (operation `Apply`), by `managedFields`.
fn owned_by(entries: Vec<ManagedEntry>, manager: &str) -> Owned {
    let mut owned = Owned::default();
    let applied = entries.into_iter().filter(|e| {
        e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply")
    });
    for fields in applied.filter_map(|e| e.fields) {
        owned.annotations.extend(
            fields
                .metadata
                .annotations
                .into_keys()
                .filter_map(|k| k.strip_prefix("f:").map(str::to_owned)),
        );
        let pod = fields.spec.template.spec;
        for (list, owned) in [
            (pod.containers, &mut owned.containers),
            (pod.init_containers, &mut owned.init_containers),
        ] {
            for (key, container) in list {
                if let Some(name) = container_name(&key)
                    && container.image.is_some()
                {
                    owned.insert(name);
                }
            }
        }
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(json: Value) -> Deployment {
        serde_json::from_value(json).expect("a deployment")
    }

    fn live(metadata: &Value, spec_replicas: i32, status: &Value) -> LiveDeployment {
        LiveDeployment::from_deployment(&deployment(json!({
            "metadata": metadata,
            "spec": { "replicas": spec_replicas, "selector": {}, "template": {} },
            "status": status,
        })))
    }

    #[test]
    fn rollout_state_follows_kubectl() {
        let deadline = json!([{ "type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"r\" has timed out progressing." }]);
        let table = [
            // (what, generation, status, expected: None complete / Some(true) failed / Some(false) progressing)
            (
                "an older generation's status is never complete",
                3,
                json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2 }),
                Some(false),
            ),
            (
                "an older generation's deadline is not this rollout's failure",
                3,
                json!({ "observedGeneration": 2, "conditions": deadline }),
                Some(false),
            ),
            (
                "too few updated replicas",
                2,
                json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2 }),
                Some(false),
            ),
            (
                "old replicas pending termination",
                2,
                json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3 }),
                Some(false),
            ),
            (
                "updated replicas not yet available",
                2,
                json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1 }),
                Some(false),
            ),
            ("no status at all", 1, json!({}), Some(false)),
            (
                "all updated and available",
                2,
                json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2 }),
                None,
            ),
            (
                "a newer observed generation counts",
                2,
                json!({ "observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2 }),
                None,
            ),
            (
                "past the progress deadline",
                2,
                json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2, "conditions": deadline }),
                Some(true),
            ),
        ];
        for (what, generation, status, expected) in table {
            let state = live(&json!({ "generation": generation }), 2, &status).rollout_state();
            match expected {
                None => assert_eq!(state, RolloutState::Complete, "{what}"),
                Some(true) => assert_eq!(
                    state,
                    RolloutState::Failed {
                        reason: PROGRESS_DEADLINE_EXCEEDED.into(),
                        message: "ReplicaSet \"r\" has timed out progressing.".into()
                    },
                    "{what}"
                ),
                Some(false) => assert!(
                    matches!(state, RolloutState::Progressing { .. }),
                    "{what}: {state:?}"
                ),
            }
        }
    }

    #[test]
    fn the_watch_s_slim_view_reads_what_the_whole_deployment_does() {
        // A Deployment as the server sends it, with the fields the view skips (labels,
        // managedFields, the selector, the rest of the pod template) and a failed condition.
        let text = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "registry", "namespace": "gitlab", "generation": 5,
                "resourceVersion": "91", "labels": { "app": "registry" },
                "annotations": { "tagship.io/version": "v1.2.0" },
                "managedFields": [{ "manager": "tagship", "operation": "Apply",
                    "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                    "fieldsV1": { "f:spec": { "f:template": {} } } }] },
            "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "registry" } },
                "template": { "metadata": { "labels": { "app": "registry" } }, "spec": {
                    "containers": [{ "name": "registry", "image": "r:v1.2.0",
                        "env": [{ "name": "A", "value": "b" }] }] } } },
            "status": { "observedGeneration": 5, "replicas": 3, "updatedReplicas": 1,
                "readyReplicas": 2, "availableReplicas": 2, "conditions": [{
                    "type": "Progressing", "status": "False",
                    "reason": "ProgressDeadlineExceeded", "message": "too slow" }] },
        })
        .to_string();
        let whole: Deployment = serde_json::from_str(&text).expect("a Deployment");
        let view: DeploymentView = serde_json::from_str(&text).expect("its view");
        let live = LiveDeployment::from_view(&view);
        assert_eq!(live, LiveDeployment::from_deployment(&whole));
        assert_eq!(live.progress_deadline_exceeded.as_deref(), Some("too slow"));
        assert_eq!(live.images["registry"], "r:v1.2.0");
        assert_eq!(view.meta().resource_version.as_deref(), Some("91"));
    }

    #[test]
    fn a_deployment_is_read_into_its_live_fields() {
        let d = deployment(json!({
            "metadata": { "name": "registry", "namespace": "gitlab", "generation": 4,
                "resourceVersion": "77", "annotations": { "a": "b" } },
            "spec": { "replicas": 3, "selector": {}, "template": { "spec": { "containers": [
                { "name": "registry", "image": "r:v1" }, { "name": "sidecar", "image": "s:v9" } ] } } },
            "status": { "observedGeneration": 4, "replicas": 4, "updatedReplicas": 3,
                "readyReplicas": 4, "availableReplicas": 4 },
        }));
        let live = LiveDeployment::from_deployment(&d);
        assert_eq!(
            live,
            LiveDeployment {
                name: "registry".into(),
                namespace: "gitlab".into(),
                generation: 4,
                observed_generation: 4,
                replicas: 3,
                paused: false,
                updated: 3,
                ready: 4,
                available: 4,
                total: 4,
                images: [("registry", "r:v1"), ("sidecar", "s:v9")]
                    .into_iter()
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .collect(),
                annotations: [("a".to_owned(), "b".to_owned())].into(),
                init_images: BTreeMap::new(),
                resource_version: "77".into(),
                progress_deadline_exceeded: None,
                image_owners: BTreeMap::new(),
            }
        );
    }

    fn managed() -> ApplyView {
        serde_json::from_value(managed_json()).expect("a Deployment's view")
    }

    fn managed_json() -> Value {
        json!({
            "metadata": { "name": "registry", "namespace": "gitlab",
                "annotations": { "tagship.io/version": "v1", "tagship.io/old": "x", "team": "y" },
                "managedFields": [
                    { "manager": "tagship", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {
                        "f:metadata": { "f:annotations": { "f:tagship.io/version": {}, "f:tagship.io/old": {} } },
                        "f:spec": { "f:template": { "f:spec": { "f:containers": {
                            "k:{\"name\":\"registry\"}": { ".": {}, "f:image": {}, "f:name": {} },
                            "k:{\"name\":\"worker\"}": { ".": {}, "f:image": {}, "f:name": {} } } } } } } },
                    { "manager": "kubectl-create", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {
                        "f:metadata": { "f:annotations": { "f:team": {} } },
                        "f:spec": { "f:replicas": {} } } },
                ] },
            "spec": { "replicas": 2, "selector": {}, "template": { "spec": { "containers": [
                { "name": "registry", "image": "r:v1" }, { "name": "worker", "image": "w:v1" },
                { "name": "sidecar", "image": "s:v9" } ] } } },
        })
    }

    /// [`apply_body`] for [`managed`].
    fn apply_to_managed(
        images: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Option<Value>, ClusterError> {
        let view = managed();
        apply_body(
            &LiveDeployment::from_view(&view),
            &view.metadata.owned,
            images,
            annotations,
        )
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn managed_fields_say_which_images_and_annotations_tagship_applied() {
        let view = managed();
        let owned = &view.metadata.owned;
        // The view made from the whole object reads `fieldsV1` the same way.
        let whole = ApplyView::from(&deployment(managed_json()));
        assert_eq!(&whole.metadata.owned, owned);
        assert_eq!(
            owned.containers,
            ["registry", "worker"].map(str::to_owned).into()
        );
        assert_eq!(
            owned.annotations,
            ["tagship.io/old", "tagship.io/version"]
                .map(str::to_owned)
                .into()
        );
    }

    #[test]
    fn the_apply_sends_only_images_and_annotations_and_keeps_what_tagship_owned_before() {
        let body = apply_to_managed(
            &map(&[("registry", "r:v2")]),
            &map(&[("tagship.io/version", "v2")]),
        )
        .expect("known containers")
        .expect("a change");
        assert_eq!(
            body,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "registry", "namespace": "gitlab",
                    "annotations": { "tagship.io/version": "v2", "tagship.io/old": "x" } },
                "spec": { "template": { "spec": { "containers": [
                    { "name": "registry", "image": "r:v2" }, { "name": "worker", "image": "w:v1" } ] } } },
            })
        );
    }

    #[test]
    fn init_containers_are_read_owned_and_applied_in_their_own_list() {
        let text = json!({
            "metadata": { "name": "registry", "namespace": "gitlab",
                "managedFields": [{ "manager": "tagship", "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": { "f:spec": { "f:template": { "f:spec": {
                        "f:initContainers": { "k:{\"name\":\"configure\"}": { "f:image": {}, "f:name": {} } },
                        "f:containers": { "k:{\"name\":\"registry\"}": { "f:image": {}, "f:name": {} } } } } } } }] },
            "spec": { "replicas": 2, "selector": {}, "template": { "spec": {
                "initContainers": [{ "name": "configure", "image": "r:v1" }, { "name": "certs", "image": "c:v7" }],
                "containers": [{ "name": "registry", "image": "r:v1" }, { "name": "sidecar", "image": "s:v9" }] } } },
        });
        let view: ApplyView = serde_json::from_value(text.clone()).expect("a view");
        assert_eq!(
            view.metadata.owned.init_containers,
            ["configure"].map(str::to_owned).into()
        );
        assert_eq!(
            ApplyView::from(&deployment(text)).metadata.owned,
            view.metadata.owned,
            "the whole object reads the same"
        );
        let current = LiveDeployment::from_view(&view);
        assert_eq!(current.init_images["certs"], "c:v7");
        assert_eq!(
            current.image_of("configure").map(String::as_str),
            Some("r:v1")
        );
        // Only the registry container is asked for: the init container tagship applied before
        // is re-sent with its live image, in its own list; nothing else is.
        let body = apply_body(
            &current,
            &view.metadata.owned,
            &map(&[("registry", "r:v2")]),
            &BTreeMap::new(),
        )
        .expect("known containers")
        .expect("a change");
        assert_eq!(
            body["spec"],
            json!({ "template": { "spec": {
                "containers": [{ "name": "registry", "image": "r:v2" }],
                "initContainers": [{ "name": "configure", "image": "r:v1" }] } } })
        );
        let body = apply_body(
            &current,
            &view.metadata.owned,
            &map(&[("registry", "r:v2"), ("configure", "r:v2")]),
            &BTreeMap::new(),
        )
        .expect("known containers")
        .expect("a change");
        assert_eq!(
            body["spec"]["template"]["spec"]["initContainers"],
            json!([{ "name": "configure", "image": "r:v2" }])
        );
    }

    #[test]
    fn nothing_is_sent_when_images_and_annotations_already_match() {
        let body = apply_to_managed(
            &map(&[("registry", "r:v1"), ("sidecar", "s:v9")]),
            &map(&[("team", "y")]),
        )
        .expect("known containers");
        assert_eq!(body, None);
    }

    #[test]
    fn a_deployment_already_running_the_images_keeps_its_annotations() {
        // A rollback after an apply refused part-way: this Deployment never changed.
        let body = apply_to_managed(
            &map(&[("registry", "r:v1")]),
            &map(&[
                ("tagship.io/version", "v1"),
                ("tagship.io/previous-version", "v2"),
            ]),
        )
        .expect("known containers");
        assert_eq!(body, None);
    }

    #[test]
    fn an_unknown_container_is_refused_rather_than_added() {
        let err = apply_to_managed(&map(&[("registyr", "r:v2")]), &BTreeMap::new())
            .expect_err("unknown container");
        assert_eq!(
            err.to_string(),
            "deployment `registry` in namespace `gitlab` has no container `registyr`"
        );
    }
}
