//! The benchmark's own watches: [`CompletionWatch`], the independent witness of when the cluster
//! finished, and the bare watch of a namespace in a child process ([`stream_floor`]), for what
//! receiving a rollout's watch stream costs by itself.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use serde_json::Value;

use super::process::timeval;
use super::stats::signed_ms;
use crate::rollout::{Rollout, deployment_rollout};

/// What a bare watch of a namespace used while a deploy ran there: the cost of receiving the
/// rollout's watch stream with the client stack tagship uses (kube-rs, rustls, HTTP/1.1, a
/// current-thread runtime), counting lines and decoding nothing.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StreamFloor {
    /// CPU time of the watching process from its watch being open to its end.
    pub(super) cpu: Duration,
    /// Watch events (lines) received.
    pub(super) events: u64,
    /// Bytes of the stream (after TLS and HTTP chunking).
    pub(super) bytes: u64,
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
pub(super) struct FloorChild {
    child: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl FloorChild {
    /// Starts it and waits for its watch to be open.
    pub(super) fn start(context: &str, namespace: &str) -> anyhow::Result<Self> {
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
    pub(super) fn finish(mut self) -> anyhow::Result<StreamFloor> {
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
