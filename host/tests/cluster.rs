//! The Kubernetes adapter against a real local kube-apiserver (v1.20, real deployment, replicaset
//! and job controllers, a kubelet stand-in).
//!
//! Needs the local cluster: `tests/cluster/up`, then `export TAGSHIP_KUBECONFIG=...` (the path it
//! prints). Each test works in a fresh namespace of its own and deletes it at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use tagship::cluster::{
    ApplyOutcome, ClusterError, JobOutcome, JobSpec, KubeCluster, LiveDeployment, LockAttempt,
    PROGRESS_DEADLINE_EXCEEDED, RolloutOutcome, RolloutState,
};
use tagship::holder::Holder;
use tagship_tests::fixtures::kubectl::Kubectl;

const IMAGE_V1: &str = "registry.example.com/registry:v1.0.0-gitlab";
const IMAGE_V2: &str = "registry.example.com/registry:v1.1.0-gitlab";
const IMAGE_V3: &str = "registry.example.com/registry:v1.2.0-gitlab";
const SIDECAR: &str = "registry.example.com/sidecar:v9.9.9";
const WAIT: Duration = Duration::from_mins(1);

/// `$TAGSHIP_KUBECONFIG`. Not `support/site.rs`'s `env`: this file does not include the site
/// support, and its message names only the one variable it needs.
fn kubeconfig() -> PathBuf {
    match std::env::var_os("TAGSHIP_KUBECONFIG") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "TAGSHIP_KUBECONFIG is not set: run tests/cluster/up and export \
             TAGSHIP_KUBECONFIG=/tmp/tagship-cluster/kubeconfig (the path `up` prints)"
        ),
    }
}

/// A connection and a fresh namespace, deleted when dropped (also when the test fails).
struct Env {
    cluster: KubeCluster,
    ns: String,
}

impl Env {
    async fn new(test: &str) -> Env {
        let cluster = KubeCluster::connect(Some(&kubeconfig()), None)
            .await
            .expect("connect to the local cluster (is tests/cluster/up running?)");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let ns = format!("tc-{test}-{}-{nanos:x}", std::process::id());
        let namespace: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": ns } })).expect("namespace");
        Api::<Namespace>::all(cluster.client().clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
        Env { cluster, ns }
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.cluster.client().clone(), &self.ns)
    }

    /// Creates Deployment `registry`: 2 replicas, containers `registry` and `sidecar`, labels,
    /// env, a 10 s progress deadline; created by another field manager than tagship's.
    ///
    /// Deliberately not one of `tagship_tests::fixtures::manifests`: this adapter test compares
    /// the whole object before and after an apply, so it wants extra labels, an annotation and
    /// env on both containers that the shared shapes do not have.
    async fn create_registry(&self) -> Deployment {
        let manifest: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "registry", "namespace": self.ns,
                "labels": { "app": "registry", "team": "container-registry" },
                "annotations": { "owner": "someone-else" } },
            "spec": {
                "replicas": 2,
                "progressDeadlineSeconds": 10,
                "selector": { "matchLabels": { "app": "registry" } },
                "template": {
                    "metadata": { "labels": { "app": "registry", "tier": "backend" } },
                    "spec": { "containers": [
                        { "name": "registry", "image": IMAGE_V1,
                          "env": [{ "name": "REGISTRY_LOG_LEVEL", "value": "info" }] },
                        { "name": "sidecar", "image": SIDECAR,
                          "env": [{ "name": "SIDECAR_MODE", "value": "proxy" }] },
                    ] },
                },
            },
        }))
        .expect("deployment manifest");
        let params = PostParams {
            field_manager: Some("test-setup".into()),
            ..PostParams::default()
        };
        self.deployments()
            .create(&params, &manifest)
            .await
            .expect("create deployment")
    }

    async fn get(&self) -> Deployment {
        self.deployments()
            .get("registry")
            .await
            .expect("get deployment")
    }

    async fn wait(&self, timeout: Duration) -> (RolloutOutcome, Vec<LiveDeployment>) {
        let mut seen = Vec::new();
        let outcome = self
            .cluster
            .wait_rollout(&self.ns, "registry", timeout, &mut |live| {
                seen.push(live.clone());
            })
            .await
            .expect("wait for the rollout");
        (outcome, seen)
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Kubectl::new(kubeconfig())
            .program("/usr/bin/kubectl")
            .namespace(&self.ns)
            .output(args)
            .expect("run kubectl")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Best effort and without waiting; kubectl because `drop` cannot await.
        Kubectl::new(kubeconfig())
            .program("/usr/bin/kubectl")
            .delete_namespace_in_background(&self.ns);
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The Deployment without what the server and controllers change on their own.
fn comparable(deployment: &Deployment) -> Value {
    let mut value = serde_json::to_value(deployment).expect("to json");
    let object = value.as_object_mut().expect("an object");
    object.remove("status");
    let meta = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("metadata");
    for field in ["managedFields", "resourceVersion", "generation"] {
        meta.remove(field);
    }
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove("deployment.kubernetes.io/revision");
    }
    value
}

/// `before`, comparable, with the registry image and the annotations changed as tagship should.
fn expected_after(
    before: &Deployment,
    image: &str,
    annotations: &BTreeMap<String, String>,
) -> Value {
    let mut value = comparable(before);
    for (key, val) in annotations {
        value["metadata"]["annotations"][key] = json!(val);
    }
    let containers = value["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers");
    for container in containers {
        if container["name"] == "registry" {
            container["image"] = json!(image);
        }
    }
    value
}

fn image_of(deployment: &Value, container: &str) -> Option<String> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)?["image"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn apply_images_changes_only_the_image_and_annotations_even_after_someone_else_scaled() {
    // Given a Deployment with 2 replicas, a sidecar, labels and env, rolled out
    let env = Env::new("apply").await;
    env.create_registry().await;
    assert_eq!(env.wait(WAIT).await.0, RolloutOutcome::Complete);
    let before = env.get().await;

    // When tagship applies a new registry image with its annotations
    let annotations = map(&[
        ("tagship.io/version", "v1.1.0"),
        ("tagship.io/pipeline-url", "https://ci/1"),
    ]);
    let outcome = env
        .cluster
        .apply_images(
            &env.ns,
            "registry",
            &map(&[("registry", IMAGE_V2)]),
            &annotations,
            false,
        )
        .await
        .expect("apply");

    // Then exactly the image and the annotations changed; replicas, sidecar, labels, env did not
    assert!(
        matches!(outcome, ApplyOutcome::Changed { .. }),
        "{outcome:?}"
    );
    let after = env.get().await;
    assert_eq!(
        comparable(&after),
        expected_after(&before, IMAGE_V2, &annotations)
    );
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(2));
    // And kubectl sees the same image
    let out = env.kubectl(&["get", "deployment", "registry", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("kubectl json");
    assert_eq!(image_of(&seen, "registry").as_deref(), Some(IMAGE_V2));
    assert_eq!(image_of(&seen, "sidecar").as_deref(), Some(SIDECAR));

    // Given someone scaled it to 3 with kubectl (another field manager)
    let out = env.kubectl(&["scale", "deployment", "registry", "--replicas=3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = env.get().await;
    assert_eq!(before.spec.as_ref().and_then(|s| s.replicas), Some(3));

    // When tagship applies the next image, naming only one of its two annotations this time
    let next = map(&[("tagship.io/version", "v1.2.0")]);
    env.cluster
        .apply_images(
            &env.ns,
            "registry",
            &map(&[("registry", IMAGE_V3)]),
            &next,
            false,
        )
        .await
        .expect("apply");

    // Then replicas stay 3 and the annotation tagship did not name keeps its value
    let after = env.get().await;
    assert_eq!(comparable(&after), expected_after(&before, IMAGE_V3, &next));
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let annotations = after.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("tagship.io/pipeline-url")
            .map(String::as_str),
        Some("https://ci/1")
    );
    let out = env.kubectl(&["get", "deployment", "registry", "-o", "json"]);
    let seen: Value = serde_json::from_slice(&out.stdout).expect("kubectl json");
    assert_eq!(image_of(&seen, "registry").as_deref(), Some(IMAGE_V3));
    assert_eq!(seen["spec"]["replicas"], json!(3));
}

#[tokio::test]
async fn applying_the_same_images_again_or_a_dry_run_changes_nothing() {
    // Given a Deployment tagship already applied an image to
    let env = Env::new("noop").await;
    env.create_registry().await;
    let images = map(&[("registry", IMAGE_V2)]);
    let annotations = map(&[("tagship.io/version", "v1.1.0")]);
    env.cluster
        .apply_images(&env.ns, "registry", &images, &annotations, false)
        .await
        .expect("apply");
    // (the controllers write the status until the rollout completes)
    assert_eq!(env.wait(WAIT).await.0, RolloutOutcome::Complete);
    let before = env.get().await;

    // When the same images and annotations are applied again
    let outcome = env
        .cluster
        .apply_images(&env.ns, "registry", &images, &annotations, false)
        .await
        .expect("apply again");

    // Then nothing changed, not even the resourceVersion
    assert_eq!(outcome, ApplyOutcome::Unchanged);
    let after = env.get().await;
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );

    // When a different image is applied as a dry run
    let outcome = env
        .cluster
        .apply_images(
            &env.ns,
            "registry",
            &map(&[("registry", IMAGE_V3)]),
            &annotations,
            true,
        )
        .await
        .expect("dry run");

    // Then the server accepted it and stored nothing
    assert_eq!(outcome, ApplyOutcome::WouldChange);
    let after = env.get().await;
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    let live = LiveDeployment::from_deployment(&after);
    assert_eq!(
        live.images.get("registry").map(String::as_str),
        Some(IMAGE_V2)
    );
}

#[tokio::test]
async fn apply_images_refuses_a_missing_deployment_or_container_instead_of_creating_it() {
    let env = Env::new("refuse").await;
    let images = map(&[("registry", IMAGE_V2)]);
    let err = env
        .cluster
        .apply_images(&env.ns, "registry", &images, &BTreeMap::new(), false)
        .await
        .expect_err("no deployment");
    assert!(
        matches!(
            err,
            ClusterError::NotFound {
                kind: "deployment",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        env.cluster
            .deployment(&env.ns, "registry")
            .await
            .expect("read")
            .is_none()
    );

    env.create_registry().await;
    let err = env
        .cluster
        .apply_images(
            &env.ns,
            "registry",
            &map(&[("registyr", IMAGE_V2)]),
            &BTreeMap::new(),
            false,
        )
        .await
        .expect_err("no such container");
    assert_eq!(
        err.to_string(),
        format!(
            "deployment `registry` in namespace `{}` has no container `registyr`",
            env.ns
        )
    );
    let live = LiveDeployment::from_deployment(&env.get().await);
    assert_eq!(live.images.len(), 2);
}

#[tokio::test]
async fn wait_rollout_completes_for_a_good_image_fails_past_the_deadline_and_never_trusts_the_previous_rollout()
 {
    // Given a rolled-out Deployment (and kubectl agrees)
    let env = Env::new("rollout").await;
    env.create_registry().await;
    assert_eq!(env.wait(WAIT).await.0, RolloutOutcome::Complete);
    let out = env.kubectl(&["rollout", "status", "deployment/registry", "--timeout=30s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // When a new good image is applied
    let outcome = env
        .cluster
        .apply_images(
            &env.ns,
            "registry",
            &map(&[("registry", IMAGE_V2)]),
            &BTreeMap::new(),
            false,
        )
        .await
        .expect("apply");
    let ApplyOutcome::Changed { generation, .. } = outcome else {
        panic!("expected a change, got {outcome:?}");
    };

    // Then right after the change the previous rollout's status does not count as complete
    let now = env
        .cluster
        .deployment(&env.ns, "registry")
        .await
        .expect("read")
        .expect("exists");
    assert_ne!(now.rollout_state(), RolloutState::Complete, "{now:?}");

    // And the wait ends Complete only once the new template is fully rolled out
    let started = Instant::now();
    let (outcome, seen) = env.wait(WAIT).await;
    assert_eq!(outcome, RolloutOutcome::Complete);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "pods need the stand-in's ready delay"
    );
    let last = seen.last().expect("progress was reported");
    assert!(last.observed_generation >= generation);
    assert_eq!((last.updated, last.available, last.total), (2, 2, 2));
    assert_eq!(
        last.images.get("registry").map(String::as_str),
        Some(IMAGE_V2)
    );
    assert!(seen.len() >= 2, "progress is reported on the way: {seen:?}");
    let out = env.kubectl(&["rollout", "status", "deployment/registry", "--timeout=30s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // When an image whose pods never become ready is applied
    let crashloop = "registry.example.com/registry:v1.3.0-crashloop";
    env.cluster
        .apply_images(
            &env.ns,
            "registry",
            &map(&[("registry", crashloop)]),
            &BTreeMap::new(),
            false,
        )
        .await
        .expect("apply");

    // Then a short wait times out, and a long one reports the passed progress deadline
    assert_eq!(
        env.wait(Duration::from_secs(1)).await.0,
        RolloutOutcome::TimedOut
    );
    let started = Instant::now();
    let (outcome, _) = env.wait(WAIT).await;
    let RolloutOutcome::Failed { reason, message } = outcome else {
        panic!("expected a failed rollout, got {outcome:?}");
    };
    assert_eq!(reason, PROGRESS_DEADLINE_EXCEEDED);
    assert!(message.contains("progressing"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // And kubectl agrees
    let out = env.kubectl(&["rollout", "status", "deployment/registry", "--timeout=10s"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exceeded its progress deadline"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn job(name: &str, image: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        pod: serde_json::json!({ "containers": [{
            "name": "registry", "image": image,
            "command": ["/bin/registry"], "args": ["database", "migrate", "up"],
            "env": [{ "name": "REGISTRY_DATABASE_ENABLED", "value": "true" }] }] }),
        backoff_limit: 0,
        labels: map(&[
            ("app.kubernetes.io/managed-by", "tagship"),
            ("tagship.io/migration", name),
        ]),
    }
}

async fn job_uid(env: &Env, name: &str) -> Option<String> {
    Api::<Job>::namespaced(env.cluster.client().clone(), &env.ns)
        .get_opt(name)
        .await
        .expect("get job")
        .and_then(|job| job.metadata.uid)
}

#[tokio::test]
async fn run_job_succeeds_and_cleans_up_fails_fast_keeping_the_last_failure_and_retries_it() {
    let env = Env::new("job").await;

    // A good image succeeds, and its Job is removed once its result is read
    let good = job("migrate-v1-1-0-abc123", IMAGE_V2);
    assert_eq!(
        env.cluster
            .run_job(&env.ns, &good, WAIT)
            .await
            .expect("run"),
        JobOutcome::Succeeded
    );
    assert_eq!(
        job_uid(&env, &good.name).await,
        None,
        "a finished Job is cleaned up"
    );

    // A failing image fails, fast (backoffLimit 0), and its Job stays for `kubectl logs`
    let bad = job(
        "migrate-v1-1-1-def456",
        "registry.example.com/registry:v1.1.1-fail",
    );
    let started = Instant::now();
    let outcome = env.cluster.run_job(&env.ns, &bad, WAIT).await.expect("run");
    let JobOutcome::Failed { reason } = outcome else {
        panic!("expected a failed job, got {outcome:?}");
    };
    assert!(reason.contains("BackoffLimitExceeded"), "{reason}");
    assert!(
        reason.contains("its pod said: container `registry` exited 1"),
        "what the pod said: {reason}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let failed_uid = job_uid(&env, &bad.name).await;
    assert!(failed_uid.is_some(), "the failed Job is kept");

    // A re-run of the failed Job runs it again, as a new Job, and keeps only the new failure
    let outcome = env
        .cluster
        .run_job(&env.ns, &bad, WAIT)
        .await
        .expect("rerun");
    assert!(matches!(outcome, JobOutcome::Failed { .. }), "{outcome:?}");
    let rerun_uid = job_uid(&env, &bad.name).await;
    assert!(rerun_uid.is_some() && rerun_uid != failed_uid);

    // A failure of other work with the same labels replaces the older failure
    let mut other = job(
        "migrate-v1-1-2-fff000",
        "registry.example.com/registry:v1.1.2-fail",
    );
    other.labels = bad.labels.clone();
    env.cluster
        .run_job(&env.ns, &other, WAIT)
        .await
        .expect("run");
    assert!(job_uid(&env, &other.name).await.is_some());
    assert_eq!(
        job_uid(&env, &bad.name).await,
        None,
        "only the last failed Job is kept"
    );
}

fn holder(id: &str) -> Holder {
    Holder {
        who: id.into(),
        reason: Some(format!("deploy by {id}")),
        pipeline_url: Some(format!("https://ci.example.com/{id}")),
        since: None,
    }
}

#[tokio::test]
async fn the_lease_lock_is_acquired_held_renewed_released_and_never_released_for_someone_else() {
    let env = Env::new("lease").await;
    let c = &env.cluster;
    let (one, two) = (holder("ci-1"), holder("ci-2"));
    let ttl = Duration::from_mins(1);

    assert_eq!(c.lock_status(&env.ns, "gstg").await.expect("status"), None);
    assert_eq!(
        c.lock_try_acquire(&env.ns, "gstg", &one, ttl)
            .await
            .expect("acquire"),
        LockAttempt::Acquired
    );

    // Someone else finds it held, with who and why
    let LockAttempt::Held(info) = c
        .lock_try_acquire(&env.ns, "gstg", &two, ttl)
        .await
        .expect("try")
    else {
        panic!("ci-2 must not get the lock");
    };
    assert_eq!(info.holder.who, "ci-1");
    assert_eq!(info.holder.reason.as_deref(), Some("deploy by ci-1"));
    assert_eq!(
        info.holder.pipeline_url.as_deref(),
        Some("https://ci.example.com/ci-1")
    );
    assert!(info.holder.since.is_some() && info.renewed.is_some() && !info.expired);
    assert!(
        info.expires_in
            .is_some_and(|left| left <= ttl && left > Duration::from_secs(50))
    );

    // The Lease round-trips on the server as the Kubernetes fields plus tagship's annotations
    let raw = Api::<Lease>::namespaced(c.client().clone(), &env.ns)
        .get("gstg")
        .await
        .expect("lease");
    let raw = serde_json::to_value(&raw).expect("json");
    assert_eq!(raw["spec"]["holderIdentity"], json!("ci-1"));
    assert_eq!(raw["spec"]["leaseDurationSeconds"], json!(60));
    assert!(raw["spec"]["renewTime"].is_string() && raw["spec"]["acquireTime"].is_string());
    assert_eq!(
        raw["metadata"]["annotations"]["tagship.io/reason"],
        json!("deploy by ci-1")
    );

    // The holder renews; someone else cannot
    c.lock_renew(&env.ns, "gstg", &one, ttl)
        .await
        .expect("renew");
    let err = c
        .lock_renew(&env.ns, "gstg", &two, ttl)
        .await
        .expect_err("not ci-2's");
    assert!(
        matches!(&err, ClusterError::LockLost { by: Some(by), .. } if by == "ci-1"),
        "{err}"
    );

    // Someone else's release changes nothing; the holder's releases it
    assert!(
        !c.lock_release(&env.ns, "gstg", &two)
            .await
            .expect("release")
    );
    assert_eq!(
        c.lock_status(&env.ns, "gstg")
            .await
            .expect("status")
            .map(|i| i.holder.who),
        Some("ci-1".into())
    );
    assert!(
        c.lock_release(&env.ns, "gstg", &one)
            .await
            .expect("release")
    );
    assert_eq!(c.lock_status(&env.ns, "gstg").await.expect("status"), None);
    assert!(
        !c.lock_release(&env.ns, "gstg", &one)
            .await
            .expect("release twice")
    );

    // And then anyone can take it
    assert_eq!(
        c.lock_try_acquire(&env.ns, "gstg", &two, ttl)
            .await
            .expect("acquire"),
        LockAttempt::Acquired
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_old_holder_learns_it_lost_the_lock() {
    let env = Env::new("expiry").await;
    let c = &env.cluster;
    let (one, two) = (holder("ci-1"), holder("ci-2"));
    assert_eq!(
        c.lock_try_acquire(&env.ns, "gprd", &one, Duration::from_secs(1))
            .await
            .expect("acquire"),
        LockAttempt::Acquired
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let info = c
        .lock_status(&env.ns, "gprd")
        .await
        .expect("status")
        .expect("a holder");
    assert!(info.expired && info.expires_in.is_none(), "{info:?}");

    assert_eq!(
        c.lock_try_acquire(&env.ns, "gprd", &two, Duration::from_mins(1))
            .await
            .expect("take over"),
        LockAttempt::Acquired
    );
    let err = c
        .lock_renew(&env.ns, "gprd", &one, Duration::from_mins(1))
        .await
        .expect_err("lost");
    assert!(
        matches!(&err, ClusterError::LockLost { by: Some(by), .. } if by == "ci-2"),
        "{err}"
    );
    assert!(
        !c.lock_release(&env.ns, "gprd", &one)
            .await
            .expect("release")
    );
    let lease = Api::<Lease>::namespaced(c.client().clone(), &env.ns)
        .get("gprd")
        .await
        .expect("lease");
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_contenders_exactly_one_acquires_in_each_of_20_rounds() {
    let env = Env::new("race").await;
    let (one, two) = (holder("ci-1"), holder("ci-2"));
    let ttl = Duration::from_mins(1);
    for round in 0..20 {
        // Even rounds race to create a new Lease; odd rounds race to take the released one.
        let lease = if round % 2 == 0 {
            format!("fresh-{round}")
        } else {
            "shared".to_owned()
        };
        let (a, b) = (env.cluster.clone(), env.cluster.clone());
        let (ns_a, ns_b) = (env.ns.clone(), env.ns.clone());
        let (lease_a, lease_b) = (lease.clone(), lease.clone());
        let (h1, h2) = (one.clone(), two.clone());
        let first =
            tokio::spawn(async move { a.lock_try_acquire(&ns_a, &lease_a, &h1, ttl).await });
        let second =
            tokio::spawn(async move { b.lock_try_acquire(&ns_b, &lease_b, &h2, ttl).await });
        let first = first.await.expect("task").expect("acquire");
        let second = second.await.expect("task").expect("acquire");
        let winner = match (&first, &second) {
            (LockAttempt::Acquired, LockAttempt::Held(info)) => {
                assert_eq!(info.holder.who, "ci-1");
                &one
            }
            (LockAttempt::Held(info), LockAttempt::Acquired) => {
                assert_eq!(info.holder.who, "ci-2");
                &two
            }
            other => panic!("round {round}: expected exactly one winner, got {other:?}"),
        };
        let status = env
            .cluster
            .lock_status(&env.ns, &lease)
            .await
            .expect("status")
            .expect("held");
        assert_eq!(status.holder.who, winner.who, "round {round}");
        if lease == "shared" {
            assert!(
                env.cluster
                    .lock_release(&env.ns, &lease, winner)
                    .await
                    .expect("release")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_keeps_the_newest_50_entries_in_order_and_state_round_trips() {
    let env = Env::new("history").await;
    let c = &env.cluster;
    assert!(
        c.history(&env.ns, "gstg")
            .await
            .expect("history")
            .is_empty()
    );
    for n in 0..55 {
        c.history_append(
            &env.ns,
            "gstg",
            json!({ "n": n, "version": format!("v1.{n}.0") }),
        )
        .await
        .expect("append");
    }
    let history = c.history(&env.ns, "gstg").await.expect("history");
    let numbers: Vec<i64> = history.iter().filter_map(|e| e["n"].as_i64()).collect();
    assert_eq!(numbers, (5..55).collect::<Vec<_>>());

    // Concurrent appends are all kept (optimistic concurrency retries the losers)
    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let (c, ns) = (env.cluster.clone(), env.ns.clone());
            tokio::spawn(async move { c.history_append(&ns, "gprd", json!({ "n": n })).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("append");
    }
    let mut numbers: Vec<i64> = c
        .history(&env.ns, "gprd")
        .await
        .expect("history")
        .iter()
        .filter_map(|e| e["n"].as_i64())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..6).collect::<Vec<_>>());

    // State
    assert_eq!(
        c.state_get(&env.ns, "gstg", "post_migrated_version")
            .await
            .expect("get"),
        None
    );
    c.state_set(&env.ns, "gstg", "post_migrated_version", "v1.1.0")
        .await
        .expect("set");
    c.state_set(&env.ns, "gstg", "other", "x")
        .await
        .expect("set");
    c.state_set(&env.ns, "gstg", "post_migrated_version", "v1.2.0")
        .await
        .expect("set");
    assert_eq!(
        c.state_get(&env.ns, "gstg", "post_migrated_version")
            .await
            .expect("get")
            .as_deref(),
        Some("v1.2.0")
    );
    assert_eq!(
        c.state_get(&env.ns, "gstg", "other")
            .await
            .expect("get")
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        c.state_get(&env.ns, "gprd", "post_migrated_version")
            .await
            .expect("get"),
        None
    );
}

#[tokio::test]
async fn connect_names_the_context_and_refuses_an_unknown_one() {
    let cluster = KubeCluster::connect(Some(&kubeconfig()), None)
        .await
        .expect("connect");
    assert_eq!(cluster.context(), "local-1");
    let err = KubeCluster::connect(Some(&kubeconfig()), Some("no-such-context"))
        .await
        .expect_err("unknown context");
    assert!(matches!(err, ClusterError::UnknownContext { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("has no context `no-such-context` (it has `local-1`"),
        "{text}"
    );
}

/// A copy of the environment's kubeconfig with `edit` applied to each line.
fn edited_kubeconfig(edit: impl Fn(&str) -> String) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(kubeconfig()).expect("the kubeconfig");
    let edited: Vec<String> = text.lines().map(edit).collect();
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), edited.join("\n")).expect("write the kubeconfig copy");
    file
}

#[tokio::test]
async fn a_refused_token_and_an_unreachable_server_are_told_apart_and_name_the_server() {
    // A token the API server does not know: 401, told as such, not as "cannot reach".
    let wrong_token = edited_kubeconfig(|line| {
        if line.trim_start().starts_with("token:") {
            "    token: not-a-valid-token".to_owned()
        } else {
            line.to_owned()
        }
    });
    let err = KubeCluster::connect(Some(wrong_token.path()), Some("local-1"))
        .await
        .expect_err("a wrong token");
    assert!(matches!(err, ClusterError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("context `local-1` at https://127.0.0.1:")
            && text.contains("refused the kubeconfig's credentials (401 Unauthorized)"),
        "{text}"
    );

    // Nothing listens on port 1: the message names the server it tried and what that means.
    let nowhere = edited_kubeconfig(|line| match line.split_once("server: ") {
        Some((indent, _)) => format!("{indent}server: https://127.0.0.1:1"),
        None => line.to_owned(),
    });
    let err = KubeCluster::connect(Some(nowhere.path()), Some("local-1"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ClusterError::Refused { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot reach the API server of context `local-1` at https://127.0.0.1:1: the connection \
         was refused, so nothing listens there; check that the API server is up and that the \
         kubeconfig's `server` is its address"
    );
}
