//! The deploy benchmark (`deploy-bench`): the real `tagship` binary against `kubectl`
//! on the local environment `tests/cluster/up` started, measured as whole processes.
//!
//! Every child runs under `/usr/bin/time -f %M` for its peak RSS and is reaped with `wait4` for
//! its user + system CPU time to the microsecond; wall time is taken here around the child. An independent watch on
//! the Deployments (kubectl's rollout rule, [`crate::rollout::deployment_rollout`], and the target
//! image) timestamps the moment the cluster finished; the children's output lines are timestamped
//! as they arrive on their pipes, so detection latency is "line arrived" minus "watch saw it".
//!
//! It works only in namespaces of its own (`bench-…`, deleted at the end) and never builds or
//! starts anything: the `tagship` binary is built by `cargo build --release -p tagship`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use serde_json::{Value, json};

use crate::harness::{Environment, TestNamespace, unique_word};
use crate::rollout::{Rollout, deployment_rollout};

/// The image repository of every benchmark Deployment.
pub const IMAGE: &str = "registry.example.com/registry";

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `tagship` binary under test.
    pub tagship: PathBuf,
    /// Measured kubectl/tagship pairs (after one warm-up pair).
    pub pairs: usize,
    /// Measured runs per scale step (1, 10, 50 Deployments).
    pub scale_runs: usize,
    /// The Deployment counts of the scale steps.
    pub scale_sizes: Vec<usize>,
    /// Runs of each start-up command.
    pub startup_runs: usize,
    /// The parts to run (all of [`PARTS`] by default).
    pub parts: Vec<String>,
    /// Where the example plugins of `tests/plugins/build-examples` are, for the `interpreted`
    /// part (skipped without them).
    pub examples: Option<PathBuf>,
}

/// The parts of the benchmark, in the order they run.
pub const PARTS: [&str; 8] = [
    "pairs",
    "scale",
    "clusters",
    "stages",
    "plugins",
    "idle",
    "startup",
    "interpreted",
];

/// What one child process used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Wall time, taken by this process around the child (spawn to reap).
    pub wall: Duration,
    /// User + system CPU time of the child.
    pub cpu: Duration,
    /// Peak resident set size of the child, in KiB.
    pub rss_kib: u64,
}

/// A finished child: its usage, exit code, and every output line with the moment it arrived.
#[derive(Debug)]
pub struct Finished {
    /// What it used.
    pub usage: Usage,
    /// Its exit code (-1 when killed by a signal).
    pub code: i32,
    /// When it exited (as seen here).
    pub ended: Instant,
    /// stdout and stderr lines, each with its arrival time.
    pub lines: Vec<(Instant, String)>,
}

impl Finished {
    /// When the first line containing `needle` arrived.
    pub fn line_at(&self, needle: &str) -> Option<Instant> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    /// When the last line containing `needle` arrived.
    pub fn last_line_at(&self, needle: &str) -> Option<Instant> {
        self.lines
            .iter()
            .rev()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    /// Every output line, in order of arrival.
    pub fn said(&self) -> String {
        self.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `program ARGS` to its end under `/usr/bin/time -f %M`, timestamping its output lines.
///
/// CPU is what `wait4` reports for `/usr/bin/time` and its reaped child, to the microsecond
/// (`time` itself adds a little: the `/bin/true` row of the start-up table is both). Peak RSS is
/// `time`'s `%M`: `wait4`'s `ru_maxrss` of a child spawned straight from here would include the
/// RSS of this process at the fork (the kernel keeps the pre-exec high-water mark), ~15 MB.
///
/// # Panics
///
/// When a pipe reader thread panicked while holding the lines (a poisoned lock).
pub fn run_timed(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Finished> {
    let rss_file = std::env::temp_dir().join(format!("deploy-bench-rss-{}", unique_word()));
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in [
        "TAGSHIP_VERSION",
        "TAGSHIP_CONFIG",
        "CI",
        "GITLAB_CI",
        "CI_COMMIT_TAG",
        "CI_PIPELINE_ID",
    ] {
        cmd.env_remove(name);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting `{}` under /usr/bin/time", program.display()))?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|pipe| {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                lines.lock().expect("lines lock").push((at, line));
            }
        })
    })
    .collect();
    let (code, cpu, _) = reap(&child)?;
    let ended = Instant::now();
    for reader in readers {
        let _ = reader.join();
    }
    let rss = std::fs::read_to_string(&rss_file)
        .with_context(|| format!("reading `{}`", rss_file.display()))?;
    let _ = std::fs::remove_file(&rss_file);
    // A failing child adds a line ("Command exited with non-zero status 1") before it.
    let rss_kib = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("unexpected /usr/bin/time output: {rss:?}"))?;
    let mut lines = std::mem::take(&mut *lines.lock().expect("lines lock"));
    lines.sort_by_key(|(t, _)| *t);
    Ok(Finished {
        usage: Usage {
            wall: ended - started,
            cpu,
            rss_kib,
        },
        code,
        ended,
        lines,
    })
}

/// Waits for `child` with `wait4`: its exit code (-1 when killed by a signal), user + system CPU
/// time of it and its reaped descendants, and its peak RSS in KiB.
#[allow(
    unsafe_code,
    reason = "wait4 is the one call that reports a child's own rusage"
)]
fn reap(child: &std::process::Child) -> anyhow::Result<(i32, Duration, u64)> {
    let pid = libc::pid_t::try_from(child.id()).context("a child pid fits pid_t")?;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data; all-zero is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes; `pid` is our own unreaped child
        // (std's `Child` is never waited on here, so it is reaped exactly once).
        let reaped = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4 on a benchmark child");
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((
        code,
        timeval(usage.ru_utime) + timeval(usage.ru_stime),
        u64::try_from(usage.ru_maxrss).unwrap_or_default(),
    ))
}

/// What a bare watch of a namespace used while a deploy ran there: the cost of receiving the
/// rollout's watch stream with the client stack tagship uses (kube-rs, rustls, HTTP/1.1, a
/// current-thread runtime), counting lines and decoding nothing.
#[derive(Debug, Clone, Copy, Default)]
struct StreamFloor {
    /// CPU time of the watching process from its watch being open to its end.
    cpu: Duration,
    /// Watch events (lines) received.
    events: u64,
    /// Bytes of the stream (after TLS and HTTP chunking).
    bytes: u64,
}

/// The user + system CPU time of this process so far.
#[allow(unsafe_code, reason = "getrusage is the call that reports it")]
fn own_cpu() -> Duration {
    // SAFETY: `rusage` is plain old data; all-zero is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or_default())
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or_default())
}

/// The child side of [`StreamFloor`] (`deploy-bench --stream-floor CONTEXT NAMESPACE`): opens a
/// watch of the namespace's Deployments from now, prints `ready`, counts what arrives until its
/// stdin closes, then prints `CPU_MICROS EVENTS BYTES` (CPU from `ready` on).
///
/// # Errors
///
/// When the environment, the cluster or the watch fails.
pub fn stream_floor(context: &str, namespace: &str) -> anyhow::Result<()> {
    use futures::AsyncBufReadExt as _;
    use std::io::Write as _;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let kubeconfig = PathBuf::from(
            std::env::var_os("TAGSHIP_KUBECONFIG").context("TAGSHIP_KUBECONFIG is not set")?,
        );
        let client = crate::client_from_kubeconfig(&kubeconfig, Some(context)).await?;
        let path = format!("/apis/apps/v1/namespaces/{namespace}/deployments");
        let list: Value = client
            .request(hyper::Request::get(format!("{path}?limit=1")).body(Vec::new())?)
            .await?;
        let version = list["metadata"]["resourceVersion"]
            .as_str()
            .context("a list without a resourceVersion")?
            .to_owned();
        let watch = hyper::Request::get(format!(
            "{path}?watch=1&resourceVersion={version}&timeoutSeconds=600"
        ))
        .body(Vec::new())?;
        let mut stream = std::pin::pin!(client.request_stream(watch).await?);
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = stop_tx.send(());
        });
        let mut out = std::io::stdout();
        writeln!(out, "ready")?;
        out.flush()?;
        let start = own_cpu();
        let (mut events, mut bytes) = (0_u64, 0_u64);
        let mut line = Vec::new();
        loop {
            line.clear();
            tokio::select! {
                read = stream.read_until(b'\n', &mut line) => {
                    let read = read?;
                    if read == 0 {
                        bail!("the server closed the watch");
                    }
                    events += 1;
                    bytes += read as u64;
                }
                _ = &mut stop => break,
            }
        }
        let cpu = own_cpu().saturating_sub(start);
        writeln!(out, "{} {events} {bytes}", cpu.as_micros())?;
        Ok(())
    })
}

/// A running `deploy-bench --stream-floor` child.
struct FloorChild {
    child: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl FloorChild {
    /// Starts it and waits for its watch to be open.
    fn start(context: &str, namespace: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--stream-floor", context, namespace])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the bare-watch child")?;
        let mut stdout = BufReader::new(child.stdout.take().context("its stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("the bare-watch child did not start its watch (said {line:?})");
        }
        Ok(Self { child, stdout })
    }

    /// Stops it; what it used.
    fn finish(mut self) -> anyhow::Result<StreamFloor> {
        drop(self.child.stdin.take());
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let status = self.child.wait()?;
        let parts: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("the bare-watch child said {line:?} ({status})"))?;
        let [cpu, events, bytes] = parts[..] else {
            bail!("the bare-watch child said {line:?} ({status})");
        };
        Ok(StreamFloor {
            cpu: Duration::from_micros(cpu),
            events,
            bytes,
        })
    }
}

/// Median, minimum and maximum, and the 10th/90th percentiles (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// 10th percentile, nearest rank.
    pub p10: f64,
    /// 90th percentile, nearest rank.
    pub p90: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            f64::midpoint(v[n / 2 - 1], v[n / 2])
        };
        let rank = |p: f64| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a rank of a short list"
            )]
            let r = ((p * n as f64).ceil() as usize).clamp(1, n);
            v[r - 1]
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            p10: rank(0.1),
            p90: rank(0.9),
            n,
        })
    }

    /// `median [min–max]`, or with p10/p90 as well when there are ten values or more, each
    /// formatted by `f`.
    pub fn show(&self, f: impl Fn(f64) -> String) -> String {
        if self.n >= 10 {
            format!(
                "{} (p10 {}, p90 {}; min {}, max {})",
                f(self.median),
                f(self.p10),
                f(self.p90),
                f(self.min),
                f(self.max)
            )
        } else {
            format!("{} [{}–{}]", f(self.median), f(self.min), f(self.max))
        }
    }
}

fn ms(x: f64) -> String {
    format!("{x:.0} ms")
}
fn ms1(x: f64) -> String {
    format!("{x:.1} ms")
}
fn mb(x: f64) -> String {
    format!("{x:.1} MB")
}
fn ratio(x: f64) -> String {
    format!("{x:.2}")
}
fn show(values: &[f64], f: fn(f64) -> String) -> String {
    Spread::of(values).map_or_else(|| "—".to_owned(), |s| s.show(f))
}
fn median(values: &[f64]) -> f64 {
    Spread::of(values).map_or(f64::NAN, |s| s.median)
}
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
#[allow(clippy::cast_precision_loss, reason = "KiB of a process fit an f64")]
pub(crate) fn megabytes(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}
/// `a - b` in milliseconds, negative when `a` came first.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        millis(a - b)
    } else {
        -millis(b - a)
    }
}

/// The registry's Deployment as Helm would create it (the shape of `host/tests/support/site.rs`):
/// 2 replicas, a `registry` container at `IMAGE:TAG` and a `sidecar` tagship must not touch.
pub fn deployment(name: &str, namespace: &str, tag: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 2, "progressDeadlineSeconds": 120,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "registry", "image": format!("{IMAGE}:{tag}")},
                    {"name": "sidecar", "image": "busybox:1.36"}
                ]}
            }
        }
    })
}

/// The `registry` container's image of `d`.
fn registry_image(d: &Deployment) -> Option<&str> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "registry")?
        .image
        .as_deref()
}

/// An independent watch on every Deployment of a namespace: when each first ran `image` with
/// its rollout complete by kubectl's rule.
pub struct CompletionWatch {
    /// By Deployment: when it was first seen with the image, and when its rollout was complete.
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a [`CompletionWatch`] saw of one Deployment.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// First event with the new image (the apply, as the watch saw it).
    changed: Instant,
    /// First event with the new image and its rollout complete.
    complete: Option<Instant>,
}

impl CompletionWatch {
    /// Starts watching `namespace` (through `client`) for `image`; returns once the initial list
    /// is in.
    ///
    /// # Panics
    ///
    /// The watch task panics when the lock was poisoned by a panic of [`Self::finished`].
    pub async fn start(
        client: kube::Client,
        namespace: &str,
        image: String,
    ) -> anyhow::Result<Self> {
        let api: Api<Deployment> = Api::namespaced(client, namespace);
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                let stream = watcher(api, watcher::Config::default()).default_backoff();
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    let at = Instant::now();
                    let d = match event {
                        Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => d,
                        Ok(watcher::Event::InitDone) => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    if registry_image(&d) == Some(image.as_str()) {
                        let mut seen = seen.lock().expect("watch lock");
                        let entry = seen.entry(d.name_any()).or_insert(Seen {
                            changed: at,
                            complete: None,
                        });
                        if entry.complete.is_none() && deployment_rollout(&d) == Rollout::Complete {
                            entry.complete = Some(at);
                        }
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .context("the benchmark's own watch did not list the namespace in 30 s")??;
        Ok(Self { seen, task })
    }

    /// When the last of `names` completed; waits up to 10 s for the watch to see them all.
    ///
    /// # Panics
    ///
    /// When the watch task panicked while holding the lock.
    pub async fn finished(&self, names: &[String]) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let seen = self.seen.lock().expect("watch lock");
                let times: Option<Vec<Instant>> = names
                    .iter()
                    .map(|n| seen.get(n).and_then(|s| s.complete))
                    .collect();
                if let Some(last) = times.and_then(|t| t.into_iter().max()) {
                    return Ok(last);
                }
            }
            if Instant::now() > deadline {
                bail!("the benchmark's own watch never saw every rollout complete");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl CompletionWatch {
    /// How long the cluster took with each of `names`, from the first sight of the new image to
    /// the complete rollout, in milliseconds (call after [`Self::finished`]).
    ///
    /// # Panics
    ///
    /// When the watch task panicked while holding the lock.
    pub fn rollout_ms(&self, names: &[String]) -> Vec<f64> {
        let seen = self.seen.lock().expect("watch lock");
        names
            .iter()
            .filter_map(|n| {
                let s = seen.get(n)?;
                Some(signed_ms(s.complete?, s.changed))
            })
            .collect()
    }
}

impl Drop for CompletionWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback HTTP server standing in for what the plugins talk to: every request gets a `200`
/// (`/min`: `v0.1.0`, the minimum registry version for `rails-compat`; anything else:
/// `{"status":"ok"}`, a healthy `/healthz`, an accepted webhook, Slack post or GitLab note), and
/// is counted.
struct Sink {
    address: String,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // `rails-compat`'s minimum registry version, below every version deployed here.
                let body = if uri.path() == "/min" {
                    "v0.1.0"
                } else {
                    r#"{"status":"ok"}"#
                };
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            requests,
            task,
        })
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One namespace of the benchmark with `count` Deployments, live at `v1.0.0`, in one or more
/// clusters of the environment.
struct Place {
    ns: TestNamespace,
    names: Vec<String>,
    dir: PathBuf,
    /// The clusters (kubeconfig contexts) it is in; the first is the environment's first.
    contexts: Vec<String>,
    kubeconfig: PathBuf,
}

/// How a place's `tagship.toml` lays its Deployments out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One stage with every Deployment, no checks, no bake.
    OneStage,
    /// One stage per Deployment (in one environment), no checks, no bake.
    StagePerDeployment,
    /// One stage, six plugins: two health checks and a compat check as pre-checks, the health
    /// checks in a bake, three notifiers.
    SixPlugins,
    /// One stage baked by one health check (a component file) that GETs Prometheus's
    /// `/-/healthy`.
    CheckBake,
}

impl Place {
    /// Creates `bench-WORD-SUFFIX` with `count` Deployments in the first `clusters` clusters,
    /// created by `kubectl apply`, with `--server-side` when `server_side`; waits for their
    /// rollouts.
    async fn create(
        env: &Environment,
        suffix: &str,
        count: usize,
        server_side: bool,
        clusters: usize,
    ) -> anyhow::Result<Self> {
        if env.contexts.len() < clusters {
            bail!(
                "this part needs {clusters} clusters and the environment has {}\nhint: tests/cluster/down, then tests/cluster/up --clusters {clusters}",
                env.contexts.len()
            );
        }
        let ns = env
            .namespace_named(&format!("bench-{}-{suffix}", unique_word()))
            .await?;
        let dir = std::env::temp_dir().join(&ns.name);
        std::fs::create_dir_all(&dir)?;
        let names: Vec<String> = if count == 1 {
            vec!["gitlab-registry".to_owned()]
        } else {
            (0..count).map(|i| format!("registry-{i}")).collect()
        };
        let place = Self {
            ns,
            names,
            dir,
            contexts: env.contexts[..clusters].to_vec(),
            kubeconfig: env.kubeconfig.clone(),
        };
        for context in &place.contexts[1..] {
            kubectl_ok(
                env,
                &["--context", context, "create", "namespace", &place.ns.name],
            )?;
        }
        let manifest = place.write_manifest("v1.0.0-gitlab")?;
        for context in &place.contexts {
            let mut args = vec!["--context", context, "apply", "-f", path_str(&manifest)?];
            if server_side {
                args.push("--server-side");
            }
            kubectl_ok(env, &args)?;
        }
        for context in &place.contexts {
            for name in &place.names {
                kubectl_ok(
                    env,
                    &[
                        "--context",
                        context,
                        "rollout",
                        "status",
                        &format!("deployment/{name}"),
                        "-n",
                        &place.ns.name,
                        "--timeout=120s",
                    ],
                )?;
            }
        }
        Ok(place)
    }

    fn write_manifest(&self, tag: &str) -> anyhow::Result<PathBuf> {
        let items: Vec<Value> = self
            .names
            .iter()
            .map(|n| deployment(n, &self.ns.name, tag))
            .collect();
        let path = self.dir.join(format!("deployments-{tag}.json"));
        std::fs::write(
            &path,
            json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
        )?;
        Ok(path)
    }

    /// A one-stage `tagship.toml` for these Deployments: no checks, no bake, no migrations.
    fn write_config(&self, env: &Environment) -> anyhow::Result<PathBuf> {
        self.write_config_as(env, Layout::OneStage, None)
    }

    /// This place's `tagship.toml` in `layout`. `with`: for [`Layout::SixPlugins`], the
    /// loopback sink (host:port) its plugins talk to; for [`Layout::CheckBake`], the check's
    /// component file.
    fn write_config_as(
        &self,
        env: &Environment,
        layout: Layout,
        with: Option<&str>,
    ) -> anyhow::Result<PathBuf> {
        let workload = |n: &str| format!("{{ deployment = \"{n}\", containers = [\"registry\"] }}");
        let clusters = self
            .contexts
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let stage = |name: &str, workloads: &str, extra: &str| {
            format!(
                r#"
[[stage]]
name = "{name}"
environment = "bench"
clusters = [{clusters}]
namespace = "{ns}"
workloads = [{workloads}]
rollout_timeout = "120s"
{extra}"#,
                ns = self.ns.name,
            )
        };
        let mut text = format!(
            r#"kubeconfig = "{kubeconfig}"

[component]
name = "registry"
image = "{IMAGE}"
tag = "{{{{version}}}}-gitlab"

[lock]
namespace = "{ns}"
ttl = "30s"
wait = "30s"
"#,
            kubeconfig = path_str(&env.kubeconfig)?,
            ns = self.ns.name,
        );
        match layout {
            Layout::OneStage => {
                let all: Vec<String> = self.names.iter().map(|n| workload(n)).collect();
                text.push_str(&stage("bench", &all.join(", "), ""));
            }
            Layout::StagePerDeployment => {
                for (i, name) in self.names.iter().enumerate() {
                    text.push_str(&stage(&format!("bench-{i}"), &workload(name), ""));
                }
            }
            Layout::CheckBake => {
                let plugin = with.context("the check-bake layout needs the check's file")?;
                text.push_str(&check_bake_plugin(env, plugin));
                text.push_str(&stage(
                    "bench",
                    &workload(&self.names[0]),
                    "[stage.bake]\nchecks = [\"check\"]\nduration = \"3s\"\ninterval = \"1s\"\ninitial_delay = \"0s\"\n",
                ));
            }
            Layout::SixPlugins => {
                let sink = with.context("the six-plugin layout needs the sink's address")?;
                text.push_str(&six_plugins(env, sink));
                text.push_str(&stage(
                    "bench",
                    &workload(&self.names[0]),
                    r#"pre_checks = ["prometheus", "http", "compat"]
notify = ["webhook", "slack", "gitlab"]
[stage.bake]
checks = ["prometheus", "http"]
duration = "3s"
interval = "1s"
initial_delay = "0s"
"#,
                ));
            }
        }
        let path = self.dir.join("tagship.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // The first cluster's namespace goes with `ns`.
        for context in &self.contexts[1..] {
            let _ = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["--context", context, "delete", "namespace", &self.ns.name])
                .arg("--wait=false")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The six plugins of [`Layout::SixPlugins`]: Prometheus's health and five that talk to `sink`.
fn six_plugins(env: &Environment, sink: &str) -> String {
    format!(
        r#"
[plugins.prometheus]
source = "builtin:prometheus-health"
allow_hosts = ["{prometheus}"]
config = {{ url = "{prom_url}", query = "vector(1)", pass = "== 1" }}

[plugins.http]
source = "builtin:http-health"
allow_hosts = ["{sink}"]
config = {{ url = "http://{sink}/healthz" }}

[plugins.compat]
source = "builtin:rails-compat"
allow_hosts = ["{sink}"]
config = {{ min_version_url = "http://{sink}/min" }}

[plugins.webhook]
source = "builtin:webhook-notify"
allow_hosts = ["{sink}"]
config = {{ url = "http://{sink}/webhook" }}

[plugins.slack]
source = "builtin:slack-notify"
allow_hosts = ["{sink}"]
secrets = ["SLACK_WEBHOOK_URL"]

[plugins.gitlab]
source = "builtin:gitlab-notify"
allow_hosts = ["{sink}"]
secrets = ["GITLAB_TOKEN"]
config = {{ api_url = "http://{sink}/api/v4", project = "1", issue_iid = "1" }}
"#,
        prometheus = env.prometheus_url.trim_start_matches("http://"),
        prom_url = env.prometheus_url,
    )
}

/// `[plugins.check]`: the health check in `plugin` (a component file), granted Prometheus,
/// `GET`ting its `/-/healthy`.
fn check_bake_plugin(env: &Environment, plugin: &str) -> String {
    format!(
        "\n[plugins.check]\nsource = \"{plugin}\"\nallow_hosts = [\"{grant}\"]\nconfig = {{ url = \"{url}/-/healthy\" }}\n",
        grant = env.prometheus_url.trim_start_matches("http://"),
        url = env.prometheus_url,
    )
}

pub(crate) fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("not UTF-8: {}", path.display()))
}

fn kubectl_ok(env: &Environment, args: &[&str]) -> anyhow::Result<String> {
    let out = env.kubectl(args)?;
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The whole benchmark: runs every part and returns the Markdown section.
pub struct Bench {
    env: Environment,
    settings: Settings,
    kubectl: PathBuf,
    cache: PathBuf,
}

/// One kubectl/tagship pair.
#[derive(Debug, Default, Clone, Copy)]
struct Pair {
    kubectl: Usage,
    tagship: Usage,
    /// tagship's "rollout complete" line minus the watch's completion, ms.
    tagship_detect_ms: f64,
    /// kubectl's "successfully rolled out" line minus the watch's completion, ms.
    kubectl_detect_ms: f64,
    /// tagship's exit minus the watch's completion, ms.
    tagship_after_ms: f64,
    /// `kubectl rollout status`'s exit minus the watch's completion, ms.
    kubectl_after_ms: f64,
}

/// One scale run.
#[derive(Debug, Default, Clone, Copy)]
struct ScaleRun {
    usage: Usage,
    /// tagship's `rollout complete` line after the cluster finished, ms.
    detect_ms: f64,
    /// tagship's exit after the cluster finished, ms.
    after_ms: f64,
    /// From tagship's start to the cluster finishing, ms.
    cluster_ms: f64,
    /// Sum over the Deployments (and clusters) of the cluster's own rollout time, from the first
    /// sight of the new image to its complete rollout, ms.
    rollout_sum_ms: f64,
    /// What bare watches of the namespace (one per cluster) used over the same deploy.
    floor: Option<StreamFloor>,
}

impl Bench {
    /// Connects to the environment and checks the binaries.
    pub async fn new(settings: Settings) -> anyhow::Result<Self> {
        if !settings.tagship.is_file() {
            bail!(
                "no tagship binary at `{}`\nhint: cargo build --release -p tagship",
                settings.tagship.display()
            );
        }
        if !Path::new("/usr/bin/time").is_file() {
            bail!("no /usr/bin/time (it measures peak RSS)\nhint: apt-get install time");
        }
        let env = Environment::connect().await?;
        let kubectl = which("kubectl").context("no kubectl on PATH")?;
        let cache = std::env::temp_dir().join(format!("bench-cache-{}", unique_word()));
        Ok(Self {
            env,
            settings,
            kubectl,
            cache,
        })
    }

    /// The kubelet stand-in's delay before a pod is Ready, as `tests/cluster/up` recorded it.
    fn ready_after_ms(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.env.dir.join("env")).ok()?;
        crate::harness::read_env_file(&text)
            .get("TAGSHIP_READY_AFTER_MS")?
            .parse()
            .ok()
    }

    fn kube_args<'a>(&'a self, args: &[&'a str]) -> anyhow::Result<Vec<&'a str>> {
        let mut all = vec!["--kubeconfig", path_str(&self.env.kubeconfig)?];
        all.extend_from_slice(args);
        Ok(all)
    }

    fn tagship(&self, args: &[&str]) -> anyhow::Result<Finished> {
        self.tagship_with(args, &[])
    }

    fn tagship_with(&self, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Finished> {
        let mut all = vec![
            ("TAGSHIP_HOLDER", "deploy-bench"),
            ("TAGSHIP_CACHE_DIR", path_str(&self.cache)?),
        ];
        all.extend_from_slice(envs);
        run_timed(&self.settings.tagship, args, &all)
    }

    /// Runs every part; the Markdown section.
    pub async fn run(&self) -> anyhow::Result<String> {
        let load_before = load_average();
        let mut out = String::new();
        let mut body = String::new();
        let wants = |part: &str| self.settings.parts.iter().any(|p| p == part);
        if wants("pairs") {
            let pairs = self.pairs().await?;
            write_pairs(&mut body, &pairs, self.settings.pairs);
        }
        if wants("scale") {
            let scale = self.scale().await?;
            write_scale(&mut body, &scale);
        }
        if wants("clusters") {
            let steps = self.clusters().await?;
            write_clusters(&mut body, &steps);
        }
        if wants("stages") {
            let steps = self.stages().await?;
            write_stages(&mut body, &steps);
        }
        if wants("plugins") {
            let (runs, requests) = self.plugins().await?;
            write_plugins(&mut body, &runs, requests);
        }
        if wants("idle") {
            let usages = self.idle().await?;
            write_idle(&mut body, &usages);
        }
        if wants("startup") {
            body.push_str(&self.startup().await?);
        }
        if wants("interpreted") {
            self.interpreted(&mut body).await?;
        }
        let load_after = load_average();
        self.write_header(&mut out, &load_before, &load_after);
        out.push_str(&body);
        let _ = std::fs::remove_dir_all(&self.cache);
        Ok(out)
    }

    fn write_header(&self, out: &mut String, before: &str, after: &str) {
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(str::to_owned))
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let busy = [before, after].iter().any(|l| {
            l.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
                > Some(1.0)
        });
        let _ = writeln!(out, "## deploy-bench: deploys against kubectl\n");
        let _ = writeln!(
            out,
            "Machine: {cpus} CPUs, {}, kernel {}. Load average before: {before}; after: {after}.{}",
            mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
            kernel.trim(),
            if busy {
                " **The machine was shared with other builds and tests (load average above 1): \
                 every wall time here is pessimistic and noisy.**"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "\ntagship: `{}` (`cargo build --release -p tagship`); kubectl: `{}`. Cluster: the \
             local environment of `tests/cluster/up` (`{}`, {} cluster(s)); its kubelet stand-in makes a \
             pod Ready {}. Every child runs under `/usr/bin/time -f %M` (its peak RSS) and is reaped \
             with `wait4`: CPU = user + system of the child and `time`, to the microsecond (the \
             `/bin/true` row is what `time` and a trivial child cost); wall time is taken by the \
             benchmark around the child (spawn to reap, including `time`'s exec).\n",
            self.settings.tagship.display(),
            self.kubectl.display(),
            self.env.dir.display(),
            self.env.contexts.len(),
            match self.ready_after_ms() {
                Some(0) => "at once (`TAGSHIP_READY_AFTER_MS=0`)".to_owned(),
                Some(ms) => format!(
                    "after {ms} ms (**not at once**: start the environment with `TAGSHIP_READY_AFTER_MS=0`)"
                ),
                None => "after its default delay (300 ms; the env file does not say)".to_owned(),
            }
        );
    }

    async fn pairs(&self) -> anyhow::Result<Vec<Pair>> {
        let k = Place::create(&self.env, "kubectl", 1, true, 1).await?;
        let t = Place::create(&self.env, "tagship", 1, false, 1).await?;
        let config = t.write_config(&self.env)?;
        let name = &k.names[0];
        let mut pairs = Vec::new();
        for i in 0..=self.settings.pairs {
            let version = format!("v1.0.{}", i + 1);
            let tag = format!("{version}-gitlab");
            let image = format!("{IMAGE}:{tag}");
            eprintln!(
                "deploy-bench: pair {i} of {} ({version}){}",
                self.settings.pairs,
                if i == 0 { ", warm-up" } else { "" }
            );
            // A: kubectl apply --server-side, then kubectl rollout status.
            let manifest = k.write_manifest(&tag)?;
            let watch =
                CompletionWatch::start(self.env.client.clone(), &k.ns.name, image.clone()).await?;
            let apply = run_timed(
                &self.kubectl,
                &self.kube_args(&["apply", "--server-side", "-f", path_str(&manifest)?])?,
                &[],
            )?;
            if apply.code != 0 {
                bail!("kubectl apply failed:\n{}", apply.said());
            }
            let target = format!("deployment/{name}");
            let status = run_timed(
                &self.kubectl,
                &self.kube_args(&[
                    "rollout",
                    "status",
                    &target,
                    "-n",
                    &k.ns.name,
                    "--timeout=120s",
                ])?,
                &[],
            )?;
            if status.code != 0 {
                bail!("kubectl rollout status failed:\n{}", status.said());
            }
            let k_done = watch.finished(&k.names).await?;
            drop(watch);
            let kubectl = Usage {
                wall: apply.usage.wall + status.usage.wall,
                cpu: apply.usage.cpu + status.usage.cpu,
                rss_kib: apply.usage.rss_kib.max(status.usage.rss_kib),
            };
            let kubectl_detect_ms = status
                .line_at("successfully rolled out")
                .map_or(f64::NAN, |at| signed_ms(at, k_done));
            // B: tagship deploy.
            let watch = CompletionWatch::start(self.env.client.clone(), &t.ns.name, image).await?;
            let deploy = self.tagship(&[
                "deploy",
                "--config",
                path_str(&config)?,
                "--version",
                &version,
            ])?;
            if deploy.code != 0 {
                bail!("tagship deploy failed:\n{}", deploy.said());
            }
            let t_done = watch.finished(&t.names).await?;
            drop(watch);
            let pair = Pair {
                kubectl,
                tagship: deploy.usage,
                tagship_detect_ms: deploy
                    .line_at("rollout complete")
                    .map_or(f64::NAN, |at| signed_ms(at, t_done)),
                kubectl_detect_ms,
                tagship_after_ms: signed_ms(deploy.ended, t_done),
                kubectl_after_ms: signed_ms(status.ended, k_done),
            };
            if i > 0 {
                pairs.push(pair);
            }
        }
        Ok(pairs)
    }

    /// Deploys `config` of `place` `runs` times after a warm-up (versions v1.0.1, v1.0.2, ...),
    /// each timed against the benchmark's own watch in every cluster of the place; with
    /// `floor`, a [`StreamFloor`] child per cluster watches each deploy too.
    async fn deploys(
        &self,
        place: &Place,
        config: &Path,
        runs: usize,
        label: &str,
        envs: &[(&str, &str)],
        floor: bool,
    ) -> anyhow::Result<Vec<ScaleRun>> {
        let mut clients = Vec::new();
        for context in &place.contexts {
            clients.push(self.env.client_for(context).await?);
        }
        let mut out = Vec::new();
        for i in 0..=runs {
            let version = format!("v1.0.{}", i + 1);
            eprintln!(
                "deploy-bench: {label}, run {i} of {runs}{}",
                if i == 0 { ", warm-up" } else { "" }
            );
            let image = format!("{IMAGE}:{version}-gitlab");
            let mut watches = Vec::new();
            for client in &clients {
                watches.push(
                    CompletionWatch::start(client.clone(), &place.ns.name, image.clone()).await?,
                );
            }
            let floors = if floor {
                place
                    .contexts
                    .iter()
                    .map(|c| FloorChild::start(c, &place.ns.name))
                    .collect::<anyhow::Result<Vec<_>>>()?
            } else {
                Vec::new()
            };
            let started = Instant::now();
            let deploy = self.tagship_with(
                &[
                    "deploy",
                    "--config",
                    path_str(config)?,
                    "--version",
                    &version,
                ],
                envs,
            )?;
            if deploy.code != 0 {
                bail!("tagship deploy failed:\n{}", deploy.said());
            }
            let mut done = started;
            let mut rollouts = Vec::new();
            for watch in &watches {
                done = done.max(watch.finished(&place.names).await?);
                rollouts.extend(watch.rollout_ms(&place.names));
            }
            let mut seen = None;
            for child in floors {
                let one = child.finish()?;
                let sum = seen.get_or_insert_with(StreamFloor::default);
                sum.cpu += one.cpu;
                sum.events += one.events;
                sum.bytes += one.bytes;
            }
            if i > 0 {
                out.push(ScaleRun {
                    usage: deploy.usage,
                    // The last stage's line: the cluster finished with the last stage.
                    detect_ms: deploy
                        .last_line_at("rollout complete")
                        .map_or(f64::NAN, |at| signed_ms(at, done)),
                    after_ms: signed_ms(deploy.ended, done),
                    cluster_ms: signed_ms(done, started),
                    rollout_sum_ms: rollouts.iter().sum(),
                    floor: seen,
                });
            }
        }
        Ok(out)
    }

    /// For each of `counts`, a place laid out by `shape(count)` (Deployments, clusters, layout),
    /// deployed [`Settings::scale_runs`] times after a warm-up.
    async fn steps(
        &self,
        part: &str,
        counts: &[usize],
        shape: fn(usize) -> (usize, usize, Layout),
    ) -> anyhow::Result<Vec<(usize, Vec<ScaleRun>)>> {
        let mut steps = Vec::new();
        for &count in counts {
            let (deployments, clusters, layout) = shape(count);
            let place = Place::create(
                &self.env,
                &format!("{part}{count}"),
                deployments,
                false,
                clusters,
            )
            .await?;
            let config = place.write_config_as(&self.env, layout, None)?;
            let label = format!("{part} {count}");
            // The scale part also measures what receiving its watch streams costs by itself.
            let floor = part == "scale";
            let runs = self
                .deploys(
                    &place,
                    &config,
                    self.settings.scale_runs,
                    &label,
                    &[],
                    floor,
                )
                .await?;
            steps.push((count, runs));
        }
        Ok(steps)
    }

    /// One stage with N Deployments.
    async fn scale(&self) -> anyhow::Result<Vec<(usize, Vec<ScaleRun>)>> {
        self.steps("scale", &self.settings.scale_sizes, |n| {
            (n, 1, Layout::OneStage)
        })
        .await
    }

    /// One stage with one Deployment over 1 and over 4 clusters.
    async fn clusters(&self) -> anyhow::Result<Vec<(usize, Vec<ScaleRun>)>> {
        self.steps("clusters", &[1, 4], |n| (1, n, Layout::OneStage))
            .await
    }

    /// A run of 1 and of 10 stages, one Deployment each.
    async fn stages(&self) -> anyhow::Result<Vec<(usize, Vec<ScaleRun>)>> {
        self.steps("stages", &[1, 10], |n| (n, 1, Layout::StagePerDeployment))
            .await
    }

    /// A deploy with six plugins loaded (two health checks and a compat check as pre-checks, the
    /// health checks in a 3 s bake, three notifiers), talking to Prometheus and to a loopback
    /// sink; the requests the sink received.
    async fn plugins(&self) -> anyhow::Result<(Vec<ScaleRun>, usize)> {
        let sink = Sink::start().await?;
        let place = Place::create(&self.env, "plugins", 1, false, 1).await?;
        let config = place.write_config_as(&self.env, Layout::SixPlugins, Some(&sink.address))?;
        let slack = format!("http://{}/slack", sink.address);
        let runs = self
            .deploys(
                &place,
                &config,
                self.settings.scale_runs,
                "six plugins",
                &[
                    ("SLACK_WEBHOOK_URL", &slack),
                    ("GITLAB_TOKEN", "bench-token"),
                ],
                false,
            )
            .await?;
        Ok((runs, sink.requests()))
    }

    /// Plugins in Python and JavaScript ([`crate::interpreted_bench`]), then a deploy baked by
    /// the Python health check, precompiled: what a deploy with one costs.
    async fn interpreted(&self, out: &mut String) -> anyhow::Result<()> {
        use crate::interpreted_bench as ib;
        let Some(dir) = &self.settings.examples else {
            out.push_str(
                "\n### Plugins in Python and JavaScript\n\nSkipped: no `--examples DIR` \
                 (tests/plugins/build-examples DIR builds them).\n",
            );
            return Ok(());
        };
        let examples = ib::examples(dir)?;
        let scratch = std::env::temp_dir().join(format!("deploy-bench-interp-{}", unique_word()));
        std::fs::create_dir_all(&scratch)?;
        let url = format!("{}/-/healthy", self.env.prometheus_url);
        let grant = self
            .env
            .prometheus_url
            .trim_start_matches("http://")
            .to_owned();
        let mut rows = Vec::new();
        for example in &examples {
            for compiler in ib::COMPILERS {
                let row = ib::measure(
                    &self.settings.tagship,
                    example,
                    compiler,
                    3,
                    self.settings.scale_runs.max(5),
                    (&url, &grant),
                    &scratch,
                )?;
                let no_choice = row.compiler != compiler;
                rows.push(row);
                if no_choice {
                    break; // a tagship before the compiler choice: one row, Cranelift's
                }
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
        ib::write(out, &rows);

        let python = dir.join("python-health.wasm");
        if python.is_file() {
            let place = Place::create(&self.env, "interp", 1, false, 1).await?;
            let config =
                place.write_config_as(&self.env, Layout::CheckBake, Some(path_str(&python)?))?;
            let precompiled =
                self.tagship(&["plugin", "precompile", "--config", path_str(&config)?])?;
            if precompiled.code != 0 {
                bail!("plugin precompile --config failed:\n{}", precompiled.said());
            }
            let runs = self
                .deploys(
                    &place,
                    &config,
                    self.settings.scale_runs,
                    "python bake",
                    &[],
                    false,
                )
                .await?;
            let _ = writeln!(
                out,
                "\n#### A deploy baked by the Python health check\n\n`tagship deploy`, one stage, \
                 one Deployment, a 3 s bake (interval 1 s) of `python-health.wasm` against \
                 Prometheus, the default compiler choice, precompiled by `tagship plugin \
                 precompile --config` (so the deploy compiles nothing).\n"
            );
            write_runs(out, "checks", &[(1, runs.clone())]);
            let peak = rss(&runs.iter().map(|r| r.usage).collect::<Vec<_>>())
                .into_iter()
                .fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "\nGoal: peak RSS of a deploy with one Python plugin <= 80 MB: max {peak:.1} MB, {}.\n",
                met(peak <= 80.0 && peak > 0.0)
            );
        }
        Ok(())
    }

    /// Re-runs of a deploy whose version is already live everywhere: nothing to change.
    async fn idle(&self) -> anyhow::Result<Vec<Usage>> {
        let place = Place::create(&self.env, "idle", 1, false, 1).await?;
        let config = place.write_config(&self.env)?;
        self.deploys(&place, &config, 0, "idle re-run: first deploy", &[], false)
            .await?;
        let mut usages = Vec::new();
        for i in 0..=self.settings.scale_runs {
            eprintln!("deploy-bench: idle re-run {i}");
            let deploy = self.tagship(&[
                "deploy",
                "--config",
                path_str(&config)?,
                "--version",
                "v1.0.1",
            ])?;
            if deploy.code != 0 {
                bail!("tagship deploy (re-run) failed:\n{}", deploy.said());
            }
            usages.push(deploy.usage);
        }
        Ok(usages)
    }

    async fn startup(&self) -> anyhow::Result<String> {
        let place = Place::create(&self.env, "status", 1, false, 1).await?;
        let config = place.write_config(&self.env)?;
        let mut out = String::from(
            "### Start-up: whole processes\n\n| command | runs | wall | CPU | peak RSS |\n|---|---|---|---|---|\n",
        );
        let commands: [(&str, Option<Vec<&str>>); 3] = [
            (
                "/bin/true (the floor: fork, exec, /usr/bin/time, reap)",
                None,
            ),
            ("tagship --version", Some(vec!["--version"])),
            (
                "tagship status --no-health --config tagship.toml (one stage, one Deployment)",
                Some(vec![
                    "status",
                    "--no-health",
                    "--config",
                    path_str(&config)?,
                ]),
            ),
        ];
        for (label, args) in commands {
            let mut usages = Vec::new();
            for _ in 0..self.settings.startup_runs {
                let ran = match &args {
                    Some(args) => self.tagship(args)?,
                    None => run_timed(Path::new("/bin/true"), &[], &[])?,
                };
                if ran.code != 0 {
                    bail!("`{label}` failed:\n{}", ran.said());
                }
                usages.push(ran.usage);
            }
            let total_cpu: Duration = usages.iter().map(|u| u.cpu).sum();
            let _ = writeln!(
                out,
                "| `{label}` | {} | {} | {:.1} ms per run ({} ms in all) | {} |",
                usages.len(),
                show(&walls(&usages), ms1),
                millis(total_cpu) / f64::from(u32::try_from(usages.len()).unwrap_or(1)),
                total_cpu.as_millis(),
                show(&rss(&usages), mb),
            );
        }
        Ok(out)
    }
}

fn walls(u: &[Usage]) -> Vec<f64> {
    u.iter().map(|u| millis(u.wall)).collect()
}
fn cpus(u: &[Usage]) -> Vec<f64> {
    u.iter().map(|u| millis(u.cpu)).collect()
}
fn rss(u: &[Usage]) -> Vec<f64> {
    u.iter().map(|u| megabytes(u.rss_kib)).collect()
}

fn write_pairs(out: &mut String, pairs: &[Pair], wanted: usize) {
    let k: Vec<Usage> = pairs.iter().map(|p| p.kubectl).collect();
    let t: Vec<Usage> = pairs.iter().map(|p| p.tagship).collect();
    let per = |f: fn(&Usage) -> f64| -> Vec<f64> {
        pairs
            .iter()
            .map(|p| f(&p.tagship) / f(&p.kubectl))
            .collect()
    };
    let wall_ratio = per(|u| u.wall.as_secs_f64());
    let cpu_ratio = per(|u| u.cpu.as_secs_f64());
    #[allow(clippy::cast_precision_loss, reason = "KiB of a process fit an f64")]
    let rss_ratio = per(|u| u.rss_kib as f64);
    let _ = writeln!(
        out,
        "### Against kubectl: one Deployment's image, one stage, no checks, no bake\n\n\
         {n} interleaved pairs (of {wanted} asked, after one warm-up pair), each: A = `kubectl apply \
         --server-side -f deployments.json` then `kubectl rollout status deployment/gitlab-registry \
         -n NS --timeout=120s`; B = `tagship deploy --config tagship.toml --version vX` (one stage, \
         lock in the same namespace, history record). Each side its own namespace and Deployment \
         (2 replicas, a `registry` and a `sidecar` container), the same new tag each pair. Ratios are \
         tagship/kubectl pair by pair. kubectl's RSS is the larger of its two processes, its CPU \
         and wall the sum.\n",
        n = pairs.len()
    );
    let rss_t = rss(&t);
    let cpu_t = cpus(&t);
    let _ = writeln!(
        out,
        "| | kubectl (A) | tagship (B) | ratio B/A per pair | goal |\n|---|---|---|---|---|\n\
         | wall | {} | {} | {} | ratio <= 1.0: {} |\n\
         | CPU (user+sys) | {} | {} | {} | ratio <= 0.5: {} |\n\
         | peak RSS | {} | {} | {} | tagship <= 40 MB: {} |",
        show(&walls(&k), ms),
        show(&walls(&t), ms),
        show(&wall_ratio, ratio),
        met(median(&wall_ratio) <= 1.0),
        show(&cpus(&k), ms),
        show(&cpu_t, ms),
        show(&cpu_ratio, ratio),
        met(median(&cpu_ratio) <= 0.5),
        show(&rss(&k), mb),
        show(&rss_t, mb),
        show(&rss_ratio, ratio),
        met(rss_t.iter().copied().fold(0.0, f64::max) <= 40.0),
    );
    let sum = |u: &[Usage], f: fn(&Usage) -> Duration| u.iter().map(f).sum::<Duration>();
    let _ = writeln!(
        out,
        "\nRatio of the sums over all pairs: wall {:.2}, CPU {:.2} ({} ms of tagship against {} ms of kubectl).",
        sum(&t, |u| u.wall).as_secs_f64() / sum(&k, |u| u.wall).as_secs_f64(),
        sum(&t, |u| u.cpu).as_secs_f64() / sum(&k, |u| u.cpu).as_secs_f64(),
        sum(&t, |u| u.cpu).as_millis(),
        sum(&k, |u| u.cpu).as_millis(),
    );
    let t_detect: Vec<f64> = pairs.iter().map(|p| p.tagship_detect_ms).collect();
    let k_detect: Vec<f64> = pairs.iter().map(|p| p.kubectl_detect_ms).collect();
    let t_after: Vec<f64> = pairs.iter().map(|p| p.tagship_after_ms).collect();
    let k_after: Vec<f64> = pairs.iter().map(|p| p.kubectl_after_ms).collect();
    let _ = writeln!(
        out,
        "\n### Detection latency\n\nFrom the moment the benchmark's own watch (a kube-rs watcher on \
         the namespace, kubectl's rollout rule, the new image) saw the rollout complete, to the \
         moment the line arrived on the child's pipe: tagship's `rollout complete`, kubectl's \
         `successfully rolled out`. \"Exit\" is the same to the child's exit (tagship then writes \
         its record and releases the lock). Negative: the child saw it before the benchmark's watch.\n\n\
         | | tagship | kubectl rollout status | goal |\n|---|---|---|---|\n\
         | line after the cluster finished | {} | {} | tagship p50 <= 50 ms: {} |\n\
         | exit after the cluster finished | {} | {} | |",
        show(&t_detect, ms1),
        show(&k_detect, ms1),
        met(median(&t_detect) <= 50.0),
        show(&t_after, ms1),
        show(&k_after, ms1),
    );
}

fn write_scale(out: &mut String, steps: &[(usize, Vec<ScaleRun>)]) {
    if steps.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Scale: one stage with N Deployments\n\n`tagship deploy --config tagship.toml --version vX`, \
         one stage whose `workloads` lists N Deployments (each 2 replicas) in one namespace of \
         `local-1`; after one warm-up run. \"Cluster\" is from the start of tagship to the moment \
         the benchmark's watch saw the last Deployment complete; \"beyond\" is tagship's exit after \
         that moment.\n"
    );
    write_runs(out, "N", steps);
    if let (Some(one), Some(fifty)) = (cpu_of(steps, 1), cpu_of(steps, 50)) {
        let _ = writeln!(
            out,
            "\nGoal: 50 Deployments cost tagship <= 2x one (CPU, medians): {:.2}x, {}.",
            fifty / one,
            met(fifty / one <= 2.0)
        );
    }
    write_floor(out, steps);
    out.push('\n');
}

/// The [`StreamFloor`] of each step beside tagship's CPU.
fn write_floor(out: &mut String, steps: &[(usize, Vec<ScaleRun>)]) {
    let floors: Vec<(usize, Vec<(f64, StreamFloor)>)> = steps
        .iter()
        .map(|(n, runs)| {
            let f = runs
                .iter()
                .filter_map(|r| Some((millis(r.usage.cpu), r.floor?)))
                .collect();
            (*n, f)
        })
        .filter(|(_, f): &(usize, Vec<_>)| !f.is_empty())
        .collect();
    if floors.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nThe watch stream alone: a second process (`deploy-bench --stream-floor`) opened a \
         watch of the same namespace's Deployments before each deploy and counted what arrived \
         until the deploy was over, decoding nothing, with tagship's client stack (kube-rs, \
         rustls, HTTP/1.1, a current-thread runtime). Its CPU is from its watch being open to its \
         end; tagship's own watch opens after its applies, so it receives a little less.\n\n\
         | N | tagship CPU | bare watch CPU | events | stream | tagship CPU minus the bare watch |\n\
         |---|---|---|---|---|---|"
    );
    for (n, runs) in &floors {
        let tagship: Vec<f64> = runs.iter().map(|(t, _)| *t).collect();
        let cpu: Vec<f64> = runs.iter().map(|(_, f)| millis(f.cpu)).collect();
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let events: Vec<f64> = runs.iter().map(|(_, f)| f.events as f64).collect();
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let bytes: Vec<f64> = runs.iter().map(|(_, f)| f.bytes as f64 / 1e6).collect();
        let rest: Vec<f64> = runs.iter().map(|(t, f)| t - millis(f.cpu)).collect();
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} |",
            show(&tagship, ms1),
            show(&cpu, ms1),
            show(&events, |x| format!("{x:.0}")),
            show(&bytes, |x| format!("{x:.2} MB")),
            show(&rest, ms1),
        );
    }
}

/// The usual columns of a table of deploys, one row per step.
fn write_runs(out: &mut String, first: &str, steps: &[(usize, Vec<ScaleRun>)]) {
    let _ = writeln!(
        out,
        "| {first} | runs | tagship CPU | peak RSS | wall | cluster finished | `rollout complete` after | exit beyond the cluster |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for (count, runs) in steps {
        let u: Vec<Usage> = runs.iter().map(|r| r.usage).collect();
        let _ = writeln!(
            out,
            "| {count} | {} | {} | {} | {} | {} | {} | {} |",
            runs.len(),
            show(&cpus(&u), ms1),
            show(&rss(&u), mb),
            show(&walls(&u), ms),
            show(&runs.iter().map(|r| r.cluster_ms).collect::<Vec<_>>(), ms),
            show(&runs.iter().map(|r| r.detect_ms).collect::<Vec<_>>(), ms1),
            show(&runs.iter().map(|r| r.after_ms).collect::<Vec<_>>(), ms1),
        );
    }
}

/// Median CPU (ms) of the step `n`.
fn cpu_of(steps: &[(usize, Vec<ScaleRun>)], n: usize) -> Option<f64> {
    steps
        .iter()
        .find(|(c, _)| *c == n)
        .map(|(_, r)| median(&r.iter().map(|r| millis(r.usage.cpu)).collect::<Vec<_>>()))
}

fn write_clusters(out: &mut String, steps: &[(usize, Vec<ScaleRun>)]) {
    let _ = writeln!(
        out,
        "\n### Scale: one stage over 1 and 4 clusters\n\n`tagship deploy`, one stage with one \
         Deployment (2 replicas) whose `clusters` lists 1 or 4 contexts of the environment (each \
         its own kube-apiserver); the cluster finished when the last of them did.\n"
    );
    write_runs(out, "clusters", steps);
    if let (Some(one), Some(four)) = (cpu_of(steps, 1), cpu_of(steps, 4)) {
        let _ = writeln!(
            out,
            "\n4 clusters cost tagship {:.2}x the CPU of one (medians).\n",
            four / one
        );
    }
}

fn write_stages(out: &mut String, steps: &[(usize, Vec<ScaleRun>)]) {
    let _ = writeln!(
        out,
        "\n### Scale: a run of 1 and of 10 stages\n\n`tagship deploy`, N stages in one \
         environment, one Deployment each, run in order. tagship's overhead is its wall time less \
         the cluster's own rollout time summed over the stages (each from the watch's first sight \
         of the new image to its complete rollout).\n"
    );
    write_runs(out, "stages", steps);
    let overhead = |n: usize| {
        steps.iter().find(|(c, _)| *c == n).map(|(_, runs)| {
            median(
                &runs
                    .iter()
                    .map(|r| millis(r.usage.wall) - r.rollout_sum_ms)
                    .collect::<Vec<_>>(),
            )
        })
    };
    if let (Some(one), Some(ten)) = (overhead(1), overhead(10)) {
        let per_stage = (ten - one) / 9.0;
        let _ = writeln!(
            out,
            "\ntagship's wall time beyond the cluster's rollouts (medians): 1 stage {one:.0} ms, \
             10 stages {ten:.0} ms; per stage added {per_stage:.1} ms (goal <= 100 ms: {}); \
             10 stages / 10 = {:.1} ms.\n",
            met(per_stage <= 100.0),
            ten / 10.0
        );
    }
}

fn write_plugins(out: &mut String, runs: &[ScaleRun], requests: usize) {
    let _ = writeln!(
        out,
        "\n### Memory: a full deploy with six plugins loaded\n\n`tagship deploy`, one stage, one \
         Deployment; plugins `prometheus-health` (the environment's Prometheus), `http-health` and \
         `rails-compat` as pre-checks, the first two also in a 3 s bake (interval 1 s), and \
         `webhook-notify`, `slack-notify` and `gitlab-notify` told every event; all but the first \
         talk to a loopback sink of the benchmark, which answered {requests} requests in all.\n"
    );
    write_runs(out, "plugins", &[(6, runs.to_vec())]);
    let peak = rss(&runs.iter().map(|r| r.usage).collect::<Vec<_>>())
        .into_iter()
        .fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "\nGoal: peak RSS <= 60 MB: max {peak:.1} MB, {}.\n",
        met(peak <= 60.0 && peak > 0.0)
    );
}

fn write_idle(out: &mut String, usages: &[Usage]) {
    let _ = writeln!(
        out,
        "\n### An idle re-run\n\n`tagship deploy` of the version already live (one stage, one \
         Deployment): it reads, finds nothing to change, and exits.\n\n\
         | runs | wall | CPU | peak RSS |\n|---|---|---|---|\n| {} | {} | {} | {} |\n",
        usages.len(),
        show(&walls(usages), ms1),
        show(&cpus(usages), ms1),
        show(&rss(usages), mb),
    );
}

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_has_the_median_of_an_even_count_between_the_middle_two() {
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).expect("values");
        assert!((s.median - 2.5).abs() < 1e-9);
        assert!((s.min - 1.0).abs() < 1e-9 && (s.max - 4.0).abs() < 1e-9);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Spread::of(&v).expect("values");
        assert!((s.p10 - 1.0).abs() < 1e-9 && (s.p90 - 9.0).abs() < 1e-9);
    }
}
