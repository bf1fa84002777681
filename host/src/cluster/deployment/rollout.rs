//! The rollout rule (`kubectl rollout status`'s, pure) and what a rollout's two watches, its
//! Deployments and their pods, know together.

use super::*;

impl LiveDeployment {
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

/// What a rollout's two watches (its Deployments, their pods) know together.
#[derive(Debug, Default)]
pub(super) struct Rollouts {
    /// Each Deployment's latest state: its template's images say which pods are the release's.
    pub(super) last: BTreeMap<String, LiveDeployment>,
    /// The latest state of each pod of the watched Deployments, by pod name.
    pub(super) pods: BTreeMap<String, PodView>,
    /// The Deployments decided.
    pub(super) outcomes: BTreeMap<String, RolloutOutcome>,
}

impl Rollouts {
    /// The failure of a pod of `deployment`'s current template, if one cannot run.
    pub(super) fn judge(&self, deployment: &str, allowed: u32) -> Option<PodFailure> {
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
pub(super) struct PodFollower<'a> {
    pub(super) api: &'a Api<PodView>,
    pub(super) server: &'a super::super::Server,
    pub(super) names: &'a [&'a str],
    pub(super) allowed: u32,
    pub(super) state: &'a std::sync::Mutex<Rollouts>,
    pub(super) failed: bool,
}

impl PodFollower<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Rollouts> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl super::super::watch::Follower<PodView> for PodFollower<'_> {
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
pub(super) fn same_state(a: &LiveDeployment, b: &LiveDeployment) -> bool {
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
