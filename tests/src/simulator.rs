//! The traffic and metrics simulator: stands in for the container registry of every namespace that
//! has a Deployment, answering `GET /ns/<namespace>/v2/` the way the registry answers `GET /v2/`,
//! and serving registry-like Prometheus metrics on `/metrics` from simulated traffic.
//!
//! The traffic of a namespace is served by its Ready, non-Job pods, one chosen at random per
//! request, so during a rollout the traffic splits between old and new pods like a Service would.
//! A pod's image tag decides its behaviour ([`crate::conventions`]): `errors` answers 20% 5xx,
//! `slow` answers most requests in over a second, anything else ~0.1% 5xx and fast. A namespace
//! with Deployments but no Ready pod answers 503.
//!
//! Series carry `namespace`, `env`, `stage` ([`crate::conventions::env_and_stage`]) and
//! `type="registry"`, so Prometheus rules group by stage. The pure parts ([`simulate_request`],
//! [`render`]) are separate from the watch and HTTP plumbing in [`run`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};

use crate::conventions::{Behaviour, behaviour_of_image, env_and_stage, version_of_image};
use crate::kubelet::is_job_pod;

/// The header the registry sends with its version.
pub const VERSION_HEADER: &str = "Gitlab-Container-Registry-Version";
/// Upper bounds (seconds) of the request-duration histogram buckets, `+Inf` implied.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How much traffic is simulated. Defaults: 100 requests per second per namespace, generated in
/// steps of 100 ms.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Simulated requests per second in each namespace.
    pub requests_per_second: u32,
    /// How often a batch of simulated requests is generated.
    pub tick: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            requests_per_second: 100,
            tick: Duration::from_millis(100),
        }
    }
}

/// Status code and duration of one simulated request to a pod with `behaviour`, given two uniform
/// random numbers in `[0, 1)`: `roll` decides the status, `spread` the latency.
pub fn simulate_request(behaviour: Behaviour, roll: f64, spread: f64) -> (u16, f64) {
    let error_ratio = if behaviour.errors { 0.2 } else { 0.001 };
    let code = if roll < error_ratio { 500 } else { 200 };
    let seconds = if behaviour.slow && spread < 0.9 {
        1.2 + 2.0 * spread
    } else {
        0.005 + 0.08 * spread
    };
    (code, seconds)
}

/// Counters of one namespace.
#[derive(Debug, Default, Clone)]
pub struct NamespaceMetrics {
    /// Requests by status code.
    pub requests: BTreeMap<u16, u64>,
    /// Cumulative counts per bucket of [`BUCKETS`].
    pub buckets: [u64; BUCKETS.len()],
    /// Sum of request durations, seconds.
    pub sum: f64,
    /// Number of observed requests.
    pub count: u64,
}

impl NamespaceMetrics {
    /// Counts one request.
    pub fn observe(&mut self, code: u16, seconds: f64) {
        *self.requests.entry(code).or_default() += 1;
        for (bound, bucket) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Renders all namespaces' metrics in the Prometheus text format.
pub fn render(metrics: &BTreeMap<String, NamespaceMetrics>) -> String {
    let mut out = String::new();
    let labels = |namespace: &str| {
        let (env, stage) = env_and_stage(namespace);
        format!(
            r#"namespace="{namespace}",env="{env}",stage="{stage}",type="registry",method="get",route="/v2/""#
        )
    };
    out.push_str("# HELP registry_http_requests_total Simulated registry HTTP requests.\n");
    out.push_str("# TYPE registry_http_requests_total counter\n");
    for (namespace, m) in metrics {
        for (code, n) in &m.requests {
            let _ = writeln!(
                out,
                r#"registry_http_requests_total{{{},code="{code}"}} {n}"#,
                labels(namespace)
            );
        }
    }
    out.push_str(
        "# HELP registry_http_request_duration_seconds Simulated registry request durations.\n",
    );
    out.push_str("# TYPE registry_http_request_duration_seconds histogram\n");
    for (namespace, m) in metrics {
        let l = labels(namespace);
        for (bound, n) in BUCKETS.iter().zip(m.buckets) {
            let _ = writeln!(
                out,
                r#"registry_http_request_duration_seconds_bucket{{{l},le="{bound}"}} {n}"#
            );
        }
        let _ = writeln!(
            out,
            r#"registry_http_request_duration_seconds_bucket{{{l},le="+Inf"}} {}"#,
            m.count
        );
        let _ = writeln!(
            out,
            "registry_http_request_duration_seconds_sum{{{l}}} {}",
            m.sum
        );
        let _ = writeln!(
            out,
            "registry_http_request_duration_seconds_count{{{l}}} {}",
            m.count
        );
    }
    out
}

struct Shared {
    deployments: Store<Deployment>,
    pods: Store<Pod>,
    metrics: Mutex<BTreeMap<String, NamespaceMetrics>>,
}

impl Shared {
    fn served_namespaces(&self) -> Vec<String> {
        let mut namespaces: Vec<String> = self
            .deployments
            .state()
            .iter()
            .filter_map(|d| d.namespace())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        namespaces
    }

    /// Images of the Ready pods that serve `namespace`, or `None` when it has no Deployment.
    fn serving_images(&self, namespace: &str) -> Option<Vec<String>> {
        if !self
            .deployments
            .state()
            .iter()
            .any(|d| d.namespace().as_deref() == Some(namespace))
        {
            return None;
        }
        let images = self
            .pods
            .state()
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .filter(|p| p.metadata.deletion_timestamp.is_none() && !is_job_pod(p) && is_ready(p))
            .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
            .collect();
        Some(images)
    }

    fn record(&self, namespace: &str, code: u16, seconds: f64) {
        let mut metrics = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        metrics
            .entry(namespace.to_owned())
            .or_default()
            .observe(code, seconds);
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pick(images: &[String]) -> Option<&String> {
    if images.is_empty() {
        None
    } else {
        images.get(fastrand::usize(..images.len()))
    }
}

async fn generate_traffic(shared: Arc<Shared>, config: SimulatorConfig) {
    let mut ticker = tokio::time::interval(config.tick);
    let per_tick = f64::from(config.requests_per_second) * config.tick.as_secs_f64();
    let mut carry = 0.0;
    loop {
        ticker.tick().await;
        carry += per_tick;
        let whole = carry.floor();
        carry -= whole;
        // `whole` is a small non-negative count: requests_per_second times a fraction of a second.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "small non-negative count"
        )]
        let requests = whole as u32;
        let served = shared.served_namespaces();
        // Forget namespaces whose Deployments are gone, so `/metrics` does not grow with every test.
        shared
            .metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|n, _| served.contains(n));
        for namespace in served {
            let images = shared.serving_images(&namespace).unwrap_or_default();
            for _ in 0..requests {
                let (code, seconds) = match pick(&images) {
                    Some(image) => simulate_request(
                        behaviour_of_image(image),
                        fastrand::f64(),
                        fastrand::f64(),
                    ),
                    None => (503, 0.001),
                };
                shared.record(&namespace, code, seconds);
            }
        }
    }
}

async fn registry_root(
    State(shared): State<Arc<Shared>>,
    Path(namespace): Path<String>,
) -> Response {
    let Some(images) = shared.serving_images(&namespace) else {
        let body = format!(
            r#"{{"errors":[{{"code":"NOT_FOUND","message":"no deployment in namespace {namespace}"}}]}}"#
        );
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    };
    let Some(image) = pick(&images) else {
        shared.record(&namespace, 503, 0.001);
        return (StatusCode::SERVICE_UNAVAILABLE, "no ready pod\n").into_response();
    };
    shared.record(&namespace, 200, 0.001);
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response();
    if let Ok(version) = HeaderValue::from_str(version_of_image(image)) {
        response.headers_mut().insert(VERSION_HEADER, version);
    }
    response
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = render(
        &shared
            .metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn reflect<K>(api: Api<K>) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                eprintln!("simulator: watch error (retrying): {e}");
            }
        }
    });
    (store, task)
}

/// Serves the simulator on `listener` until the server fails.
pub async fn run(
    client: Client,
    config: SimulatorConfig,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let (deployments, _deployments_task) = reflect::<Deployment>(Api::all(client.clone()));
    let (pods, _pods_task) = reflect::<Pod>(Api::all(client));
    deployments.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        deployments,
        pods,
        metrics: Mutex::new(BTreeMap::new()),
    });
    tokio::spawn(generate_traffic(shared.clone(), config));
    let app = Router::new()
        .route("/ns/{namespace}/v2/", get(registry_root))
        .route("/ns/{namespace}/v2", get(registry_root))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared);
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behaviour(image: &str) -> Behaviour {
        behaviour_of_image(image)
    }

    #[test]
    fn an_errors_tag_fails_a_fifth_of_requests_and_a_normal_tag_almost_none() {
        let rolls = (0..1000).map(|i| f64::from(i) / 1000.0);
        let errors = rolls
            .clone()
            .filter(|r| simulate_request(behaviour("r:v1-errors"), *r, 0.5).0 >= 500)
            .count();
        let normal = rolls
            .filter(|r| simulate_request(behaviour("r:v1"), *r, 0.5).0 >= 500)
            .count();
        assert_eq!(errors, 200);
        assert_eq!(normal, 1);
    }

    #[test]
    fn a_slow_tag_makes_most_requests_take_over_a_second() {
        let spreads = (0..100).map(|i| f64::from(i) / 100.0);
        let slow = spreads
            .clone()
            .filter(|s| simulate_request(behaviour("r:v1-slow"), 0.5, *s).1 > 1.0)
            .count();
        let fast = spreads
            .filter(|s| simulate_request(behaviour("r:v1"), 0.5, *s).1 > 1.0)
            .count();
        assert_eq!(slow, 90);
        assert_eq!(fast, 0);
    }

    #[test]
    fn metrics_render_counters_and_a_cumulative_histogram_with_stage_labels() {
        let mut m = NamespaceMetrics::default();
        m.observe(200, 0.02);
        m.observe(500, 2.0);
        let text = render(&BTreeMap::from([("gstg-cny".to_owned(), m)]));
        let labels = r#"namespace="gstg-cny",env="gstg",stage="cny",type="registry",method="get",route="/v2/""#;
        assert!(
            text.contains(&format!(
                r#"registry_http_requests_total{{{labels},code="500"}} 1"#
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            r#"registry_http_request_duration_seconds_bucket{{{labels},le="0.025"}} 1"#
        )));
        assert!(text.contains(&format!(
            r#"registry_http_request_duration_seconds_bucket{{{labels},le="2.5"}} 2"#
        )));
        assert!(text.contains(&format!(
            r#"registry_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} 2"#
        )));
    }
}
