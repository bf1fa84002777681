//! The deploy lock: a `coordination.k8s.io/v1` Lease, taken by compare-and-swap.
//!
//! `spec.holderIdentity` is the holder's id, `spec.leaseDurationSeconds` the time to live,
//! `spec.renewTime` the last renewal and `spec.acquireTime` when the holder took it. tagship's
//! extra fields are annotations on the Lease: [`ANNOTATION_REASON`], [`ANNOTATION_PIPELINE_URL`]
//! and [`ANNOTATION_SINCE`] (RFC 3339). Other deployers take the same Lease by the same protocol.
//!
//! # Guarantees
//!
//! - Two contenders never both acquire: a free Lease is created with POST (the second gets 409
//!   `AlreadyExists`) and an existing one is replaced with the `resourceVersion` that was read (the
//!   loser gets 409 Conflict). Either loser re-reads and reports who holds the lock.
//! - A holder that stops renewing loses the lock once `renewTime + leaseDurationSeconds` passes.
//! - Release and renew never touch a Lease someone else holds.
//!
//! # Caveats
//!
//! Expiry compares the Lease's times with this machine's clock; skew between deployers' clocks
//! shortens or lengthens the time to live by the skew. A Lease without `leaseDurationSeconds`
//! never expires.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

use super::retry;
use super::{ClusterError, FIELD_MANAGER, KubeCluster, Object, Server};
use crate::holder::Holder;

/// Annotation holding why the lock is held.
pub const ANNOTATION_REASON: &str = "tagship.io/reason";
/// Annotation holding the pipeline that holds the lock.
pub const ANNOTATION_PIPELINE_URL: &str = "tagship.io/pipeline-url";
/// Annotation holding when the holder took the lock (RFC 3339).
pub const ANNOTATION_SINCE: &str = "tagship.io/since";

/// Compare-and-swap rounds before giving up; each round is a read and a write.
const ROUNDS: u32 = 8;

/// Who holds the lock, as the Lease says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// `holderIdentity`, and the annotations [`ANNOTATION_REASON`], [`ANNOTATION_PIPELINE_URL`]
    /// and [`ANNOTATION_SINCE`] (else `acquireTime`, RFC 3339).
    pub holder: Holder,
    /// `renewTime` (RFC 3339).
    pub renewed: Option<String>,
    /// Time left before it expires; `None` when expired or without a duration.
    pub expires_in: Option<Duration>,
    /// The holder stopped renewing in time: anyone may take the lock.
    pub expired: bool,
}

/// What a [`KubeCluster::lock_try_acquire`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// The caller holds the lock now (newly, or it already did and renewed it).
    Acquired,
    /// Someone else holds it.
    Held(LockInfo),
}

/// Who holds `lease` at `now`; `None` when nobody does.
pub fn lock_info(lease: &Lease, now: Timestamp) -> Option<LockInfo> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let annotation = |key: &str| {
        lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
    let expiry = renewed
        .zip(spec.lease_duration_seconds)
        .map(|(at, seconds)| {
            at.0.checked_add(SignedDuration::from_secs(i64::from(seconds)))
                .unwrap_or(Timestamp::MAX)
        });
    let left = expiry.map(|expiry| expiry.duration_since(now));
    let expired = match (renewed, left) {
        (None, _) => true,
        (Some(_), Some(left)) => left.is_negative() || left.is_zero(),
        (Some(_), None) => false,
    };
    Some(LockInfo {
        holder: Holder {
            who: holder,
            reason: annotation(ANNOTATION_REASON),
            pipeline_url: annotation(ANNOTATION_PIPELINE_URL),
            since: annotation(ANNOTATION_SINCE).or_else(|| spec.acquire_time.as_ref().map(rfc3339)),
        },
        renewed: spec.renew_time.as_ref().map(rfc3339),
        expires_in: left
            .filter(|_| !expired)
            .and_then(|left| Duration::try_from(left).ok()),
        expired,
    })
}

fn rfc3339(time: &MicroTime) -> String {
    time.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whole seconds of `ttl`, at least 1.
fn ttl_seconds(ttl: Duration) -> i32 {
    i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// `lease` rewritten as held by `holder` from `now`. Keeps the acquisition time when `holder`
/// already held it; counts a transition when it takes the lock over from someone else.
fn taken(mut lease: Lease, holder: &Holder, ttl: Duration, now: Timestamp) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let previous = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let ours = previous.as_deref() == Some(holder.who.as_str());
    if !ours {
        spec.acquire_time = Some(MicroTime(now));
        if previous.is_some() {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
    }
    spec.holder_identity = Some(holder.who.clone());
    spec.lease_duration_seconds = Some(ttl_seconds(ttl));
    spec.renew_time = Some(MicroTime(now));
    let annotations = lease
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(
        ANNOTATION_REASON.to_owned(),
        holder.reason.clone().unwrap_or_default(),
    );
    match &holder.pipeline_url {
        Some(url) => annotations.insert(ANNOTATION_PIPELINE_URL.to_owned(), url.clone()),
        None => annotations.remove(ANNOTATION_PIPELINE_URL),
    };
    if !ours || !annotations.contains_key(ANNOTATION_SINCE) {
        annotations.insert(ANNOTATION_SINCE.to_owned(), rfc3339(&MicroTime(now)));
    }
    lease
}

/// `lease` with nobody holding it (the object stays, so its history of transitions stays).
fn released(mut lease: Lease) -> Lease {
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
    }
    if let Some(annotations) = lease.metadata.annotations.as_mut() {
        for key in [ANNOTATION_REASON, ANNOTATION_PIPELINE_URL, ANNOTATION_SINCE] {
            annotations.remove(key);
        }
    }
    lease
}

fn holder_of(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

impl KubeCluster {
    /// Tries once to take the lock `lease` in `ns` for `holder` with time to live `ttl`.
    ///
    /// Free, expired, or already ours: [`LockAttempt::Acquired`] (ours is renewed). Held by
    /// someone else who renews in time: [`LockAttempt::Held`] with who and why. Does not wait.
    pub async fn lock_try_acquire(
        &self,
        ns: &str,
        lease: &str,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<LockAttempt, ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), ns);
        let object = Object::new("lease", ns, lease);
        for _ in 0..ROUNDS {
            let now = Timestamp::now();
            let Some(current) = read(&api, &self.server, object).await? else {
                let fresh = Lease {
                    metadata: ObjectMeta {
                        name: Some(lease.to_owned()),
                        namespace: Some(ns.to_owned()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match api
                    .create(&post_params(), &taken(fresh, holder, ttl, now))
                    .await
                {
                    Ok(_) => return Ok(LockAttempt::Acquired),
                    // Someone created it first: read who.
                    Err(err) if retry::is_conflict(&err) => continue,
                    Err(err) if retry::is_transient(&err) => continue,
                    Err(err) => return Err(object.api_error("create", err)),
                }
            };
            if let Some(info) = lock_info(&current, now)
                && info.holder.who != holder.who
                && !info.expired
            {
                return Ok(LockAttempt::Held(info));
            }
            if replace(&api, object, taken(current, holder, ttl, now)).await? {
                return Ok(LockAttempt::Acquired);
            }
            // Lost the race to another writer: the next round reads who won.
        }
        Err(object.contended("take the lock", ROUNDS))
    }

    /// Renews the lock for `holder` for another `ttl`.
    ///
    /// # Errors
    ///
    /// [`ClusterError::LockLost`] when `holder` no longer holds it (it expired and was taken,
    /// was released, or the Lease is gone). A lock that expired but that nobody took is renewed.
    pub async fn lock_renew(
        &self,
        ns: &str,
        lease: &str,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<(), ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), ns);
        let object = Object::new("lease", ns, lease);
        for _ in 0..ROUNDS {
            let current = read(&api, &self.server, object).await?;
            let by = current.as_ref().and_then(holder_of);
            let Some(current) = current.filter(|_| by.as_deref() == Some(holder.who.as_str()))
            else {
                return Err(ClusterError::LockLost {
                    lease: lease.to_owned(),
                    namespace: ns.to_owned(),
                    holder: holder.who.clone(),
                    by,
                });
            };
            if replace(&api, object, taken(current, holder, ttl, Timestamp::now())).await? {
                return Ok(());
            }
        }
        Err(object.contended("renew the lock", ROUNDS))
    }

    /// Releases the lock if `holder` holds it: `true` if it did, `false` (and nothing changed)
    /// when someone else or nobody holds it.
    pub async fn lock_release(
        &self,
        ns: &str,
        lease: &str,
        holder: &Holder,
    ) -> Result<bool, ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), ns);
        let object = Object::new("lease", ns, lease);
        for _ in 0..ROUNDS {
            let Some(current) = read(&api, &self.server, object).await? else {
                return Ok(false);
            };
            if holder_of(&current).as_deref() != Some(holder.who.as_str()) {
                return Ok(false);
            }
            if replace(&api, object, released(current)).await? {
                return Ok(true);
            }
        }
        Err(object.contended("release the lock", ROUNDS))
    }

    /// Who holds the lock, `None` when the Lease is absent or nobody holds it. An expired
    /// holder is reported with `expired: true`.
    pub async fn lock_status(
        &self,
        ns: &str,
        lease: &str,
    ) -> Result<Option<LockInfo>, ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), ns);
        let object = Object::new("lease", ns, lease);
        Ok(read(&api, &self.server, object)
            .await?
            .and_then(|l| lock_info(&l, Timestamp::now())))
    }
}

async fn read(
    api: &Api<Lease>,
    server: &Server,
    object: Object<'_>,
) -> Result<Option<Lease>, ClusterError> {
    retry::retry(server, || api.get_opt(object.name))
        .await
        .map_err(|err| object.api_error("read", err))
}

/// Replaces the Lease with `lease`, whose resourceVersion is the one read: `false` when someone
/// wrote it in between (409) or it is gone (404).
async fn replace(api: &Api<Lease>, object: Object<'_>, lease: Lease) -> Result<bool, ClusterError> {
    // A transient failure may hide a write that landed: the re-read of the next round decides.
    match api.replace(object.name, &post_params(), &lease).await {
        Ok(_) => Ok(true),
        Err(err)
            if retry::is_conflict(&err)
                || retry::is_not_found(&err)
                || retry::is_transient(&err) =>
        {
            Ok(false)
        }
        Err(err) => Err(object.api_error("write", err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lease(spec: &serde_json::Value) -> Lease {
        serde_json::from_value(json!({
            "metadata": { "name": "gstg", "annotations": {
                "tagship.io/reason": "deploy v3", "tagship.io/since": "2025-01-01T10:00:00Z" } },
            "spec": spec,
        }))
        .expect("a lease")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn a_lease_renewed_within_its_duration_is_held() {
        let info = lock_info(
            &lease(
                &json!({ "holderIdentity": "ci-1", "leaseDurationSeconds": 60,
                "renewTime": "2025-01-01T10:00:00.000000Z" }),
            ),
            at("2025-01-01T10:00:45Z"),
        )
        .expect("held");
        assert_eq!(info.holder.who, "ci-1");
        assert_eq!(info.holder.reason.as_deref(), Some("deploy v3"));
        assert_eq!(info.holder.since.as_deref(), Some("2025-01-01T10:00:00Z"));
        assert_eq!(info.renewed.as_deref(), Some("2025-01-01T10:00:00Z"));
        assert!(!info.expired);
        assert_eq!(info.expires_in, Some(Duration::from_secs(15)));
    }

    #[test]
    fn a_lease_not_renewed_within_its_duration_is_expired() {
        let info = lock_info(
            &lease(
                &json!({ "holderIdentity": "ci-1", "leaseDurationSeconds": 60,
                "renewTime": "2025-01-01T10:00:00.000000Z" }),
            ),
            at("2025-01-01T10:01:01Z"),
        )
        .expect("a holder");
        assert!(info.expired);
        assert_eq!(info.expires_in, None);
    }

    #[test]
    fn a_lease_without_holder_is_free() {
        assert_eq!(
            lock_info(
                &lease(&json!({ "holderIdentity": "" })),
                at("2025-01-01T10:00:00Z")
            ),
            None
        );
        assert_eq!(
            lock_info(&lease(&json!({})), at("2025-01-01T10:00:00Z")),
            None
        );
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquisition_time() {
        let holder = Holder {
            who: "ci-2".into(),
            reason: Some("deploy v4".into()),
            pipeline_url: None,
            since: None,
        };
        let old = lease(
            &json!({ "holderIdentity": "ci-1", "leaseDurationSeconds": 60, "leaseTransitions": 2,
            "acquireTime": "2025-01-01T09:00:00.000000Z", "renewTime": "2025-01-01T10:00:00.000000Z" }),
        );
        let now = at("2025-01-01T11:00:00Z");
        let took = taken(old, &holder, Duration::from_mins(2), now);
        let spec = took.spec.clone().expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("ci-2"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.lease_duration_seconds, Some(120));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        let later = at("2025-01-01T11:00:30Z");
        let renewed = taken(took, &holder, Duration::from_mins(2), later);
        let spec = renewed.spec.clone().expect("spec");
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(later)));
        assert_eq!(spec.lease_transitions, Some(3));
        let since = renewed
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_SINCE));
        assert_eq!(since.map(String::as_str), Some("2025-01-01T11:00:00Z"));
        let free = released(renewed);
        assert_eq!(lock_info(&free, later), None);
        assert!(free.metadata.annotations.expect("annotations").is_empty());
    }
}
