//! Deployments: reading one, server-side applying the images and annotations tagship owns, and
//! watching a rollout to its end by `kubectl rollout status`'s rule.
//!
//! This file holds the batched reads, applies and rollout watch; the rule itself (pure) and
//! what the rollout's watches know together are in `rollout`, the slim decoding views in `view`,
//! and the server-side-apply body in `apply`.
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
                    crate::terminal::one_line(&e)
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

mod apply;
mod rollout;
mod view;

use apply::apply_body;
use rollout::{PodFollower, Rollouts, same_state};
use view::{ApplyView, DeploymentView, ViewContainer};

#[cfg(test)]
mod tests;
