//! A fault-injecting proxy between a Kubernetes client (tagship) and a kube-apiserver, on
//! loopback only, controlled from tests and counting what it injected.
//!
//! # At which level each fault is injected
//!
//! The proxy speaks plain HTTP/1.1 to the client (it listens on `127.0.0.1`; the client's
//! kubeconfig names `http://127.0.0.1:PORT`, see [`FaultProxy::kubeconfig_for`]) and HTTPS to
//! the apiserver, trusting the CA of the apiserver's kubeconfig. Terminating the client side in
//! plain HTTP is what lets it answer with HTTP statuses of its own; it means the client's TLS
//! handshake is not under test (kube-rs sends the same requests over `http://`).
//!
//! | [`Fault`] | level | what the client sees |
//! |---|---|---|
//! | [`Fault::Status`] | HTTP, proxy answers | a `Status` JSON with the code (429 with `Retry-After`, 500, 503, …); the apiserver never sees the request |
//! | [`Fault::Drop`] | TCP: the proxy reads the request and closes the connection | a connection closed before any response; the apiserver never sees the request |
//! | [`Fault::LoseResponse`] | TCP: the request is forwarded and done by the apiserver, then the connection is closed | the write happened but the client cannot know |
//! | [`Fault::Stall`] | HTTP: the response (headers) is held back, then forwarded | a slow apiserver |
//! | [`Fault::CutStream`] | TCP: the response body is forwarded up to a byte count, then the connection is aborted mid-body | a watch (or read) cut mid-way, chunked encoding left unfinished |
//! | [`Fault::EndStream`] | HTTP: the response body ends cleanly after a byte count | the apiserver closing a watch early (as on its timeout) |
//!
//! Faults of the apiserver itself (killed, restarted) are not the proxy's: the tests do that to
//! the real process.
//!
//! # Guarantees
//!
//! - Listens on `127.0.0.1` only; forwards only to the one upstream it was given.
//! - A rule injects at most `times` faults, after letting `skip` matching requests through; every
//!   injection is counted per rule, and every request is recorded (method, path and query, the
//!   fault injected if any).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kube::config::Kubeconfig;
use tokio::net::TcpListener;

/// Which requests a [`Rule`] applies to. Every given part must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// The HTTP method (`GET`, `PATCH`, …); `None`: any.
    pub method: Option<String>,
    /// Substrings the path must all contain (e.g. `/deployments/`, the object's name).
    pub path: Vec<String>,
    /// `Some(true)`: only watch requests (`watch=true` or `watch=1` in the query);
    /// `Some(false)`: only non-watch requests; `None`: both.
    pub watch: Option<bool>,
}

impl Match {
    /// Requests with this method whose path contains every one of `parts`.
    pub fn new(method: &str, parts: &[&str]) -> Self {
        Match {
            method: Some(method.to_owned()),
            path: parts.iter().map(|p| (*p).to_owned()).collect(),
            watch: None,
        }
    }

    /// Any method; the path contains every one of `parts`.
    pub fn any(parts: &[&str]) -> Self {
        Match {
            method: None,
            ..Match::new("", parts)
        }
    }

    /// Only watch requests.
    #[must_use]
    pub fn watching(mut self) -> Self {
        self.watch = Some(true);
        self
    }

    /// Only requests that are not watches.
    #[must_use]
    pub fn not_watching(mut self) -> Self {
        self.watch = Some(false);
        self
    }

    /// Whether `method` + `path` (without query) + `query` match.
    pub fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self.path.iter().all(|p| path.contains(p.as_str()))
            && self.watch.is_none_or(|w| w == is_watch(query))
    }
}

fn is_watch(query: &str) -> bool {
    query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1")
}

/// What the proxy does to a matching request. See the module docs for the level of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this HTTP status itself (with a Kubernetes `Status` body), and `Retry-After: N`
    /// seconds when given.
    Status {
        /// The code, e.g. 429, 500, 503.
        code: u16,
        /// The `Retry-After` header's seconds.
        retry_after: Option<u32>,
    },
    /// Read the request, close the connection, answer nothing.
    Drop,
    /// Forward the request, let the apiserver do it, then close the connection without
    /// forwarding the response.
    LoseResponse,
    /// Hold the response back this long, then forward it.
    Stall(Duration),
    /// Forward the response, then abort the connection once this many body bytes went through
    /// (at a chunk boundary at or after it).
    CutStream {
        /// Body bytes forwarded before the cut.
        after_bytes: usize,
    },
    /// Forward the response, then end the body cleanly once this many bytes went through.
    EndStream {
        /// Body bytes forwarded before the end.
        after_bytes: usize,
    },
}

impl Fault {
    /// `Status { code, retry_after: None }`.
    pub fn status(code: u16) -> Self {
        Fault::Status {
            code,
            retry_after: None,
        }
    }

    /// 429 Too Many Requests with `Retry-After: seconds`.
    pub fn throttle(seconds: u32) -> Self {
        Fault::Status {
            code: 429,
            retry_after: Some(seconds),
        }
    }
}

/// One programmed fault: for the matching requests after the first `skip`, inject `fault`
/// `times` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which requests.
    pub matching: Match,
    /// What to do to them.
    pub fault: Fault,
    /// Matching requests let through untouched before the first injection.
    pub skip: usize,
    /// Injections at most (`usize::MAX`: every matching request from then on).
    pub times: usize,
}

impl Rule {
    /// `fault` for the next `times` requests `matching`.
    pub fn new(matching: Match, fault: Fault, times: usize) -> Self {
        Rule {
            matching,
            fault,
            skip: 0,
            times,
        }
    }

    /// Lets the first `skip` matching requests through before injecting.
    #[must_use]
    pub fn after(mut self, skip: usize) -> Self {
        self.skip = skip;
        self
    }
}

/// Handle of an injected [`Rule`], to read its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleId(usize);

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    /// The fault injected into it, if any.
    pub fault: Option<Fault>,
}

impl Seen {
    /// The value of query parameter `key`, if present (not URL-decoded).
    pub fn query(&self, key: &str) -> Option<&str> {
        let query = self.uri.split_once('?')?.1;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

#[derive(Debug)]
struct Armed {
    rule: Rule,
    matched: usize,
    injected: usize,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Armed>,
    seen: Vec<Seen>,
}

impl State {
    /// The fault for this request, counting it against the first rule that wants it.
    fn decide(&mut self, method: &str, path: &str, query: &str) -> Option<Fault> {
        // Every matching rule counts the request (so `skip` counts requests, not leftovers of
        // earlier rules); the first one with injections left injects.
        let mut fault = None;
        for armed in &mut self.rules {
            if !armed.rule.matching.matches(method, path, query) {
                continue;
            }
            armed.matched += 1;
            if fault.is_none()
                && armed.matched > armed.rule.skip
                && armed.injected < armed.rule.times
            {
                armed.injected += 1;
                fault = Some(armed.rule.fault.clone());
            }
        }
        fault
    }
}

type Shared = Arc<Mutex<State>>;

/// A running proxy. Runs on its own thread and runtime, so sync and async tests can use it; it
/// stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: String,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` to the apiserver of `context` in the kubeconfig
    /// at `kubeconfig` (its `server` URL and `certificate-authority-data`).
    pub fn start(kubeconfig: &Path, context: &str) -> anyhow::Result<Self> {
        let (server, ca) = upstream_of(kubeconfig, context)?;
        Self::start_to(&server, ca.as_deref())
    }

    /// Starts a proxy to `upstream` (`https://127.0.0.1:PORT`), trusting the PEM `ca` if given.
    ///
    /// # Panics
    ///
    /// On the proxy's own thread, when its runtime or listener cannot be set up.
    pub fn start_to(upstream: &str, ca: Option<&[u8]>) -> anyhow::Result<Self> {
        let mut client = reqwest::Client::builder()
            .http1_only()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0);
        if let Some(ca) = ca {
            client = client.add_root_certificate(
                reqwest::Certificate::from_pem(ca).context("the apiserver's CA")?,
            );
        }
        let client = client.build()?;
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state: Shared = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let thread = {
            let state = state.clone();
            let upstream = upstream.clone();
            std::thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("fault proxy runtime");
                    runtime.block_on(async move {
                        let listener =
                            TcpListener::from_std(std_listener).expect("fault proxy listener");
                        let upstream = Arc::new((client, upstream));
                        tokio::select! {
                            () = accept_loop(listener, state, upstream) => {}
                            _ = stopped => {}
                        }
                    });
                    runtime.shutdown_background();
                })?
        };
        Ok(FaultProxy {
            addr,
            upstream,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The apiserver it forwards to.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Arms `rule`; rules are tried in the order they were armed.
    pub fn inject(&self, rule: Rule) -> RuleId {
        let mut state = self.lock();
        state.rules.push(Armed {
            rule,
            matched: 0,
            injected: 0,
        });
        RuleId(state.rules.len() - 1)
    }

    /// How many faults `rule` injected so far.
    pub fn injected(&self, rule: RuleId) -> usize {
        self.lock().rules.get(rule.0).map_or(0, |a| a.injected)
    }

    /// How many requests matched `rule` so far (injected or let through).
    pub fn matched(&self, rule: RuleId) -> usize {
        self.lock().rules.get(rule.0).map_or(0, |a| a.matched)
    }

    /// Disarms every rule (their counts stay readable).
    pub fn disarm(&self) {
        for armed in &mut self.lock().rules {
            armed.rule.times = armed.injected;
        }
    }

    /// Faults injected so far, by kind (`503`, `429`, `drop`, `lose-response`, `stall`, `cut`,
    /// `end`).
    pub fn injected_by_kind(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for seen in &self.lock().seen {
            if let Some(fault) = &seen.fault {
                *kinds.entry(kind(fault)).or_insert(0) += 1;
            }
        }
        kinds
    }

    /// Every request seen so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// The requests seen so far that `matching` matches.
    pub fn seen_matching(&self, matching: &Match) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| {
                let (path, query) = s.uri.split_once('?').unwrap_or((&s.uri, ""));
                matching.matches(&s.method, path, query)
            })
            .collect()
    }

    /// Writes to `dest` a copy of the kubeconfig at `source` in which `context`'s cluster is
    /// reached through this proxy (`server: http://127.0.0.1:PORT`). Other contexts are kept.
    pub fn kubeconfig_for(&self, source: &Path, context: &str, dest: &Path) -> anyhow::Result<()> {
        let mut config = Kubeconfig::read_from(source)
            .with_context(|| format!("read `{}`", source.display()))?;
        let name = cluster_of(&config, context)?;
        for entry in &mut config.clusters {
            if entry.name == name
                && let Some(cluster) = entry.cluster.as_mut()
            {
                cluster.server = Some(self.url());
                cluster.certificate_authority = None;
                cluster.certificate_authority_data = None;
            }
        }
        // JSON is YAML: kube-rs and kubectl both read it.
        std::fs::write(dest, serde_json::to_string_pretty(&config)?)
            .with_context(|| format!("write `{}`", dest.display()))?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A short name for a fault's kind, as [`FaultProxy::injected_by_kind`] counts them.
pub fn kind(fault: &Fault) -> String {
    match fault {
        Fault::Status { code, .. } => code.to_string(),
        Fault::Drop => "drop".into(),
        Fault::LoseResponse => "lose-response".into(),
        Fault::Stall(_) => "stall".into(),
        Fault::CutStream { .. } => "cut".into(),
        Fault::EndStream { .. } => "end".into(),
    }
}

fn cluster_of(config: &Kubeconfig, context: &str) -> anyhow::Result<String> {
    config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .with_context(|| format!("no context `{context}` in the kubeconfig"))
}

/// The `server` and decoded CA of `context`'s cluster.
fn upstream_of(kubeconfig: &Path, context: &str) -> anyhow::Result<(String, Option<Vec<u8>>)> {
    let config = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("read `{}`", kubeconfig.display()))?;
    let name = cluster_of(&config, context)?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.cluster.as_ref())
        .with_context(|| format!("no cluster `{name}` in the kubeconfig"))?;
    let server = cluster.server.clone().context("cluster without server")?;
    if !server.starts_with("https://127.0.0.1:") && !server.starts_with("http://127.0.0.1:") {
        bail!("the fault proxy forwards to loopback only, not `{server}`");
    }
    let ca = match &cluster.certificate_authority_data {
        Some(data) => Some(decode_base64(data)?),
        None => None,
    };
    Ok((server, ca))
}

fn decode_base64(text: &str) -> anyhow::Result<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let value = ALPHABET
            .iter()
            .position(|a| *a == byte)
            .context("invalid base64 in certificate-authority-data")?;
        buffer = (buffer << 6) | u32::try_from(value)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff)?);
        }
    }
    Ok(out)
}

type Body = BoxBody<Bytes, std::io::Error>;
type Upstream = Arc<(reqwest::Client, String)>;

async fn accept_loop(listener: TcpListener, state: Shared, upstream: Upstream) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, state.clone(), upstream.clone()));
            // A connection ending in an error is what several faults are made of.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The error a service returns to make hyper close the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("fault proxy: connection dropped on purpose")]
struct Dropped;

async fn handle(
    req: Request<Incoming>,
    state: Shared,
    upstream: Upstream,
) -> Result<Response<Body>, Dropped> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), ToString::to_string);
    let fault = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let fault = state.decide(&method, &path, &query);
        state.seen.push(Seen {
            method: method.clone(),
            uri: uri.clone(),
            fault: fault.clone(),
        });
        fault
    };
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    match &fault {
        Some(Fault::Status { code, retry_after }) => return Ok(status(*code, *retry_after)),
        Some(Fault::Drop) => return Err(Dropped),
        Some(Fault::Stall(delay)) => tokio::time::sleep(*delay).await,
        _ => {}
    }
    let (client, base) = &*upstream;
    let mut request = client.request(parts.method.clone(), format!("{base}{uri}"));
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            request = request.header(name, value);
        }
    }
    let Ok(mut response) = request.body(body).send().await else {
        return Ok(status(502, None));
    };
    if fault == Some(Fault::LoseResponse) {
        // The apiserver did it; read its answer to the end so the write is complete, then drop.
        while let Ok(Some(_)) = response.chunk().await {}
        return Err(Dropped);
    }
    let mut reply = Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            reply = reply.header(name.as_str(), value.as_bytes());
        }
    }
    let limit = match fault {
        Some(Fault::CutStream { after_bytes }) => Some((after_bytes, true)),
        Some(Fault::EndStream { after_bytes }) => Some((after_bytes, false)),
        _ => None,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut sent = 0usize;
        loop {
            if let Some((after, cut)) = limit
                && sent >= after
            {
                if cut {
                    let _ = tx
                        .send(Err(std::io::Error::other("fault proxy: stream cut")))
                        .await;
                }
                return;
            }
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    sent += chunk.len();
                    if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    let _ = tx.send(Err(std::io::Error::other(err))).await;
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    reply
        .body(StreamBody::new(stream).boxed())
        .map_err(|_| Dropped)
}

fn status(code: u16, retry_after: Option<u32>) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected by the fault proxy: HTTP {code}"),
        "reason": if code == 429 { "TooManyRequests" } else { "InternalError" },
        "code": code,
        // As the apiserver does: clients read Retry-After from the header or from here.
        "details": retry_after.map(|s| serde_json::json!({ "retryAfterSeconds": s })),
    })
    .to_string();
    let mut reply = Response::builder()
        .status(code)
        .header("content-type", "application/json");
    if let Some(seconds) = retry_after {
        reply = reply.header("retry-after", seconds.to_string());
    }
    reply
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_skips_then_injects_a_bounded_number_of_times() {
        let mut state = State::default();
        state.rules.push(Armed {
            rule: Rule::new(
                Match::new("PATCH", &["/deployments/"]),
                Fault::status(503),
                2,
            )
            .after(1),
            matched: 0,
            injected: 0,
        });
        let path = "/apis/apps/v1/namespaces/a/deployments/x";
        let got: Vec<_> = (0..5).map(|_| state.decide("PATCH", path, "")).collect();
        assert_eq!(
            got,
            [
                None,
                Some(Fault::status(503)),
                Some(Fault::status(503)),
                None,
                None
            ]
        );
        assert_eq!(state.decide("GET", path, ""), None);
    }

    #[test]
    fn watch_matching_reads_the_query() {
        let m = Match::any(&["/deployments"]).watching();
        assert!(m.matches(
            "GET",
            "/apis/apps/v1/deployments",
            "fieldSelector=x&watch=true"
        ));
        assert!(!m.matches("GET", "/apis/apps/v1/deployments", "fieldSelector=x"));
        assert!(
            Match::any(&["/deployments"])
                .not_watching()
                .matches("GET", "/deployments", "")
        );
    }

    #[test]
    fn base64_of_the_kubeconfig_decodes() {
        assert_eq!(decode_base64("aGVsbG8=").expect("base64"), b"hello");
        assert_eq!(decode_base64("aGVsbG8hIQ==").expect("base64"), b"hello!!");
    }
}
