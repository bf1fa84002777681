//! The traffic and metrics simulator: stands in for the container registry of every namespace that
//! has a Deployment, answering `GET /ns/<namespace>/v2/` the way the registry answers `GET /v2/`,
//! and serving registry-like Prometheus metrics on `/metrics` from simulated traffic. It also plays
//! the image registry's HTTP API (Docker Registry HTTP API v2, as registry.gitlab.com serves it):
//! `/v2/` and `/v2/<name>/manifests/<reference>` behind token authentication, tokens from
//! `/jwt/auth`, each manifest's digest being [`crate::conventions::manifest_digest`] of its name
//! and tag, so the kubelet stand-in accepts exactly the digests this API gives.
//!
//! The traffic of a namespace is served by its Ready, non-Job pods, one chosen at random per
//! request, so during a rollout the traffic splits between old and new pods like a Service would.
//! A pod's image tag decides its behaviour ([`crate::conventions`]): `errors` answers 20% 5xx,
//! `slow` answers most requests in over a second, anything else ~0.1% 5xx and fast. A namespace
//! with Deployments but no Ready pod answers 503.
//!
//! Series carry `namespace`, `env`, `stage` ([`crate::conventions::env_and_stage`]) and
//! `type="registry"`, so Prometheus rules group by stage. The pure parts ([`simulate_request`],
//! [`render`], [`registry_route`], [`pull_scope`], [`challenge`], [`manifest_answer`],
//! [`basic_credentials_accepted`]) are separate from the watch, token and HTTP plumbing in [`run`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};

use crate::conventions::{
    Behaviour, MISSING, behaviour_of_image, env_and_stage, manifest_digest, version_of_image,
};
use crate::kubelet::is_job_pod;

/// The header the registry sends with its version.
pub const VERSION_HEADER: &str = "Gitlab-Container-Registry-Version";
/// Upper bounds (seconds) of the request-duration histogram buckets, `+Inf` implied.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The path of the token endpoint a `401` challenge names as its realm.
pub const TOKEN_PATH: &str = "/jwt/auth";
/// The `service` of the registry's tokens.
pub const TOKEN_SERVICE: &str = "container_registry";
/// The only Basic credentials the token endpoint accepts (anonymous requests are accepted too).
pub const BASIC_CREDENTIALS: (&str, &str) = ("tagship", "registry-password");
/// How long a token is valid, in seconds.
pub const TOKEN_EXPIRES_IN: u64 = 300;
/// The media type of the manifests the registry serves.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The header that carries a manifest's digest.
pub const DIGEST_HEADER: &str = "Docker-Content-Digest";
/// The header every registry API answer carries, and its value.
pub const API_VERSION_HEADER: (&str, &str) = ("Docker-Distribution-Api-Version", "registry/2.0");

/// What a request under `/v2/` asks for, from the path after `/v2/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryRoute<'a> {
    /// `/v2/`: the API's version check.
    Root,
    /// `/v2/<name>/manifests/<reference>`; the name may contain slashes, the reference is a tag or
    /// a digest.
    Manifest {
        /// The repository name.
        name: &'a str,
        /// The tag or digest.
        reference: &'a str,
    },
    /// Anything else: 404.
    Unknown,
}

/// The route of `/v2/<rest>`.
pub fn registry_route(rest: &str) -> RegistryRoute<'_> {
    if rest.is_empty() {
        return RegistryRoute::Root;
    }
    match rest.rsplit_once("/manifests/") {
        Some((name, reference))
            if !name.is_empty() && !reference.is_empty() && !reference.contains('/') =>
        {
            RegistryRoute::Manifest { name, reference }
        }
        _ => RegistryRoute::Unknown,
    }
}

/// The repository a token `scope` grants pulling from: `repository:gitlab/registry:pull` (or
/// `pull,push`) → `gitlab/registry`; `None` for any other scope.
pub fn pull_scope(scope: &str) -> Option<&str> {
    let (name, actions) = scope.strip_prefix("repository:")?.rsplit_once(':')?;
    (!name.is_empty() && actions.split(',').any(|a| a == "pull" || a == "*")).then_some(name)
}

/// The `WWW-Authenticate` value of a `401`: a Bearer challenge naming the token endpoint under
/// `base_url`, the service, the scope needed for `name` (none for `/v2/`) and, for a token that was
/// sent but does not do, why (`invalid_token`, `insufficient_scope`).
pub fn challenge(base_url: &str, name: Option<&str>, error: Option<&str>) -> String {
    let mut value = format!(r#"Bearer realm="{base_url}{TOKEN_PATH}",service="{TOKEN_SERVICE}""#);
    if let Some(name) = name {
        let _ = write!(value, r#",scope="repository:{name}:pull""#);
    }
    if let Some(error) = error {
        let _ = write!(value, r#",error="{error}""#);
    }
    value
}

/// The JSON error body of a `401` from the registry API.
pub fn unauthorized_body(name: Option<&str>) -> String {
    let detail = name.map_or_else(
        || "null".to_owned(),
        |name| format!(r#"[{{"Type":"repository","Class":"","Name":"{name}","Action":"pull"}}]"#),
    );
    format!(
        r#"{{"errors":[{{"code":"UNAUTHORIZED","message":"authentication required","detail":{detail}}}]}}"#
    )
}

/// What the registry answers for a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestAnswer {
    /// 200 with this digest header and body. The body's own SHA-256 is not the digest: the digest
    /// is [`manifest_digest`] of the name and tag.
    Found {
        /// The `Docker-Content-Digest`.
        digest: String,
        /// A small schema 2 manifest.
        body: String,
    },
    /// 404 with this `MANIFEST_UNKNOWN` body.
    Unknown {
        /// The registry's JSON error.
        body: String,
    },
}

/// The manifest of `name` at `reference`: every tag exists except one containing `missing`, its
/// digest being [`manifest_digest`]`(name, tag)`; a `sha256:` digest reference of 64 lower-case
/// hex digits exists as itself.
pub fn manifest_answer(name: &str, reference: &str) -> ManifestAnswer {
    let unknown = |detail: &str| ManifestAnswer::Unknown {
        body: format!(
            r#"{{"errors":[{{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{detail}}}]}}"#
        ),
    };
    let digest = if let Some(hex) = reference.strip_prefix("sha256:") {
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return unknown(&format!(r#"{{"Digest":"{reference}"}}"#));
        }
        reference.to_owned()
    } else if reference.contains(MISSING) {
        return unknown(&format!(r#"{{"Tag":"{reference}"}}"#));
    } else {
        manifest_digest(name, reference)
    };
    let config = manifest_digest(name, &format!("{reference}/config"));
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MEDIA_TYPE}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":0,"digest":"{config}"}},"layers":[]}}"#
    );
    ManifestAnswer::Found { digest, body }
}

/// Whether an `Authorization` header's Basic credentials are [`BASIC_CREDENTIALS`]; `None` when
/// the header is not Basic.
pub fn basic_credentials_accepted(authorization: &str) -> Option<bool> {
    use base64::Engine as _;
    let encoded = authorization
        .strip_prefix("Basic ")
        .or_else(|| authorization.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok());
    let (user, password) = BASIC_CREDENTIALS;
    Some(decoded.as_deref() == Some(&format!("{user}:{password}")))
}

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
    /// Issued tokens: the repositories each may pull, and when it was issued.
    tokens: Mutex<HashMap<String, (BTreeSet<String>, Instant)>>,
    /// `http://<listen address>`, the base URL when a request has no `Host` header.
    listen_url: String,
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

fn base_url(shared: &Shared, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(
            || shared.listen_url.clone(),
            |host| format!("http://{host}"),
        )
}

fn json_response(code: StatusCode, body: String) -> Response {
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    response.headers_mut().insert(
        API_VERSION_HEADER.0,
        HeaderValue::from_static(API_VERSION_HEADER.1),
    );
    response
}

/// Checks the Bearer token of a request for `name` (any valid token for `/v2/`): `Err` carries the
/// challenge's error, `None` when no token was sent.
fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    name: Option<&str>,
) -> Result<(), Option<&'static str>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(None)?;
    let tokens = shared.tokens.lock().unwrap_or_else(PoisonError::into_inner);
    let lifetime = Duration::from_secs(TOKEN_EXPIRES_IN);
    let Some((names, _)) = tokens
        .get(token.trim())
        .filter(|(_, issued)| issued.elapsed() < lifetime)
    else {
        return Err(Some("invalid_token"));
    };
    match name {
        Some(name) if !names.contains(name) => Err(Some("insufficient_scope")),
        _ => Ok(()),
    }
}

async fn registry_v2_root(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    registry_v2(&shared, &headers, "")
}

async fn registry_v2_path(
    State(shared): State<Arc<Shared>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    registry_v2(&shared, &headers, &rest)
}

fn registry_v2(shared: &Shared, headers: &HeaderMap, rest: &str) -> Response {
    let route = registry_route(rest);
    let name = match route {
        RegistryRoute::Unknown => {
            return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
        }
        RegistryRoute::Root => None,
        RegistryRoute::Manifest { name, .. } => Some(name),
    };
    if let Err(error) = authorize(shared, headers, name) {
        let mut response = json_response(StatusCode::UNAUTHORIZED, unauthorized_body(name));
        let value = challenge(&base_url(shared, headers), name, error);
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        return response;
    }
    let RegistryRoute::Manifest { name, reference } = route else {
        return json_response(StatusCode::OK, "{}".to_owned());
    };
    match manifest_answer(name, reference) {
        ManifestAnswer::Unknown { body } => json_response(StatusCode::NOT_FOUND, body),
        ManifestAnswer::Found { digest, body } => {
            let length = body.len();
            let mut response = json_response(StatusCode::OK, body);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            if let Ok(value) = HeaderValue::from_str(&digest) {
                headers.insert(DIGEST_HEADER, value.clone());
            }
            if let Ok(value) = HeaderValue::from_str(&format!("\"{digest}\"")) {
                headers.insert(header::ETAG, value);
            }
            response
        }
    }
}

/// `GET /jwt/auth?service=container_registry&scope=repository:<name>:pull`: a token for the pull
/// scopes asked for, anonymously or with [`BASIC_CREDENTIALS`]; 401 for other credentials, 404 for
/// another service.
async fn token(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if authorization.and_then(basic_credentials_accepted) == Some(false) {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"HTTP Basic: Access denied. The provided password or token is incorrect."}]}"#;
        let mut response = json_response(StatusCode::UNAUTHORIZED, body.to_owned());
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="GitLab""#),
        );
        return response;
    }
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if !pairs
        .iter()
        .any(|(k, v)| k == "service" && v == TOKEN_SERVICE)
    {
        return (StatusCode::NOT_FOUND, "").into_response();
    }
    let names: BTreeSet<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter_map(pull_scope)
        .map(str::to_owned)
        .collect();
    let token = hex::encode((0..32).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
    {
        let mut tokens = shared.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let lifetime = Duration::from_secs(TOKEN_EXPIRES_IN);
        tokens.retain(|_, (_, issued)| issued.elapsed() < lifetime);
        tokens.insert(token.clone(), (names, Instant::now()));
    }
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_EXPIRES_IN,
    });
    json_response(StatusCode::OK, body.to_string())
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
    let listen_url = format!("http://{}", listener.local_addr()?);
    let (deployments, _deployments_task) = reflect::<Deployment>(Api::all(client.clone()));
    let (pods, _pods_task) = reflect::<Pod>(Api::all(client));
    deployments.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        deployments,
        pods,
        metrics: Mutex::new(BTreeMap::new()),
        tokens: Mutex::new(HashMap::new()),
        listen_url,
    });
    tokio::spawn(generate_traffic(shared.clone(), config));
    let app = Router::new()
        .route("/ns/{namespace}/v2/", get(registry_root))
        .route("/ns/{namespace}/v2", get(registry_root))
        .route("/v2/", get(registry_v2_root))
        .route("/v2", get(registry_v2_root))
        .route("/v2/{*rest}", get(registry_v2_path))
        .route(TOKEN_PATH, get(token))
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
    fn registry_paths_route_to_the_root_a_manifest_or_nothing() {
        for (rest, route) in [
            ("", RegistryRoute::Root),
            (
                "gitlab/registry/manifests/v3.1.0-gitlab",
                RegistryRoute::Manifest {
                    name: "gitlab/registry",
                    reference: "v3.1.0-gitlab",
                },
            ),
            (
                "a/manifests/b/manifests/sha256:00",
                RegistryRoute::Manifest {
                    name: "a/manifests/b",
                    reference: "sha256:00",
                },
            ),
            ("registry/manifests/", RegistryRoute::Unknown),
            ("/manifests/v1", RegistryRoute::Unknown),
            ("registry/tags/list", RegistryRoute::Unknown),
            ("registry/blobs/sha256:00", RegistryRoute::Unknown),
        ] {
            assert_eq!(registry_route(rest), route, "{rest}");
        }
    }

    #[test]
    fn a_scope_grants_pulling_only_with_the_pull_action() {
        for (scope, name) in [
            ("repository:gitlab/registry:pull", Some("gitlab/registry")),
            (
                "repository:gitlab/registry:push,pull",
                Some("gitlab/registry"),
            ),
            ("repository:gitlab/registry:push", None),
            ("registry:catalog:*", None),
            ("repository::pull", None),
            ("", None),
        ] {
            assert_eq!(pull_scope(scope), name, "{scope}");
        }
    }

    #[test]
    fn a_challenge_names_the_token_endpoint_the_service_and_the_scope() {
        assert_eq!(
            challenge("http://127.0.0.1:16404", Some("gitlab/registry"), None),
            r#"Bearer realm="http://127.0.0.1:16404/jwt/auth",service="container_registry",scope="repository:gitlab/registry:pull""#
        );
        assert_eq!(
            challenge("http://h", None, None),
            r#"Bearer realm="http://h/jwt/auth",service="container_registry""#
        );
        assert_eq!(
            challenge("http://h", Some("b"), Some("insufficient_scope")),
            r#"Bearer realm="http://h/jwt/auth",service="container_registry",scope="repository:b:pull",error="insufficient_scope""#
        );
        let body: serde_json::Value =
            serde_json::from_str(&unauthorized_body(Some("b"))).expect("json");
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
        assert_eq!(body["errors"][0]["detail"][0]["Name"], "b");
    }

    #[test]
    fn a_manifest_has_the_digest_of_its_name_and_tag_unless_missing() {
        let ManifestAnswer::Found { digest, body } =
            manifest_answer("gitlab/registry", "v3.1.0-gitlab")
        else {
            panic!("found")
        };
        assert_eq!(digest, manifest_digest("gitlab/registry", "v3.1.0-gitlab"));
        let body: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["mediaType"], MANIFEST_MEDIA_TYPE);
        let pinned = manifest_digest("x", "y");
        let ManifestAnswer::Found { digest, .. } = manifest_answer("gitlab/registry", &pinned)
        else {
            panic!("a digest reference is found")
        };
        assert_eq!(digest, pinned);
        assert_eq!(
            manifest_answer("gitlab/registry", "v9.9.9-missing"),
            ManifestAnswer::Unknown {
                body: r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v9.9.9-missing"}}]}"#.to_owned()
            }
        );
        assert!(matches!(
            manifest_answer("gitlab/registry", "sha256:abc"),
            ManifestAnswer::Unknown { .. }
        ));
    }

    #[test]
    fn only_tagships_basic_credentials_are_accepted() {
        use base64::Engine as _;
        let basic = |credentials: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            )
        };
        for (header, accepted) in [
            (basic("tagship:registry-password"), Some(true)),
            (basic("tagship:wrong"), Some(false)),
            (basic("someone:registry-password"), Some(false)),
            ("Basic !!!".to_owned(), Some(false)),
            ("Bearer abc".to_owned(), None),
        ] {
            assert_eq!(basic_credentials_accepted(&header), accepted, "{header}");
        }
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
