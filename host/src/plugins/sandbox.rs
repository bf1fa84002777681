//! The per-call sandbox: the store's data and the host side of the plugin imports.
//!
//! A fresh [`State`] (and store) is made for every call. WASI is linked because every Rust guest
//! imports `wasi:cli` and `wasi:io`, but its context is empty: no preopened directories, no
//! environment, no arguments, no sockets, stdin closed; stdout and stderr are captured into
//! bounded buffers and forwarded to `tracing` under the plugin's name. The WASI context is built
//! on the call's first WASI import (most calls make none), so a call that never touches WASI
//! does not pay for seeding its random number generators.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{wit_host, wit_http, wit_types};
use super::http::HttpGate;
use super::limits::{Limits, LogBudget, MemoryLimiter};
use super::redact::Redactor;
use crate::context::DeployContext;

/// What every call of one loaded plugin shares: its name, settings, grants and limits.
#[derive(Debug)]
pub(crate) struct PluginEnv {
    pub(crate) name: String,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) limits: Limits,
    pub(crate) grants: super::grants::Grants,
    pub(crate) redactor: Redactor,
    pub(crate) http: HttpGate,
    /// Whether any config value holds a `{{...}}` placeholder; when none does, a call does not
    /// collect the template values.
    pub(crate) templated: bool,
}

/// The data of one call's store.
pub(crate) struct State {
    /// Built on first use by a WASI import; see [`new_wasi_ctx`].
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) env: Arc<PluginEnv>,
    pub(crate) limiter: MemoryLimiter,
    log: LogBudget,
    /// Values for `{{stage}}` and friends in config templates (empty unless
    /// [`PluginEnv::templated`]).
    vars: Vec<(&'static str, String)>,
    pub(crate) started: Instant,
    /// The CPU time of the threads that ran the call (see [`CpuMeter`]).
    pub(crate) cpu: Arc<CpuMeter>,
    /// Set when the epoch callback stopped the plugin for using up its CPU time.
    pub(crate) cpu_exceeded: bool,
    /// Set when the epoch callback stopped the plugin for passing its wall-clock limit.
    pub(crate) wall_exceeded: bool,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
}

impl State {
    pub(crate) fn new(env: Arc<PluginEnv>, ctx: &DeployContext) -> Self {
        let vars = if env.templated {
            template_vars(ctx)
        } else {
            Vec::new()
        };
        // Read past the cut by the longest secret form, so one straddling it is redacted whole
        // before the text is cut (see `flush_logs`).
        let capture = CAPTURE_BYTES + env.redactor.longest();
        State {
            wasi: None,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(env.limits.memory_bytes),
            log: LogBudget::new(&env.limits),
            env,
            vars,
            started: Instant::now(),
            cpu: Arc::new(CpuMeter::default()),
            cpu_exceeded: false,
            wall_exceeded: false,
            stdout: Captured::new(capture),
            stderr: Captured::new(capture),
        }
    }

    /// Forwards captured output and the dropped-line count to the log.
    pub(crate) fn flush_logs(&mut self) {
        let State {
            env,
            log,
            stdout,
            stderr,
            ..
        } = self;
        let name = env.name.as_str();
        for (stream, captured) in [("stdout", &*stdout), ("stderr", &*stderr)] {
            // Redacted whole (a multi-line secret spans lines), then cut, then split.
            let mut text = env.redactor.redact(&captured.take());
            truncate(&mut text, CAPTURE_BYTES);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if log.take(Instant::now()) {
                    tracing::info!(plugin = %name, stream, "{}", super::redact::escape(line));
                }
            }
        }
        if log.dropped > 0 {
            tracing::warn!(plugin = %name, dropped = log.dropped, "plugin log lines dropped by the rate limit");
            log.dropped = 0;
        }
    }

    /// Why the guest aborted, from what it wrote to stderr, redacted and escaped: a Rust
    /// panic as `<message> (at <file:line>)`, with the last lines written before it when there
    /// were some (an interpreter prints the script's error, a Python traceback's last line,
    /// then panics in its runtime); otherwise the last lines it wrote (a JavaScript engine's
    /// message); `None` when it wrote nothing.
    pub(crate) fn abort_message(&self) -> Option<String> {
        const TAIL: usize = 3;
        let text = self.env.redactor.redact(&self.stderr.peek());
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        let tail = |lines: &[&str]| lines[lines.len().saturating_sub(TAIL)..].join(" | ");
        let Some(at) = lines.iter().position(|l| l.contains("panicked at")) else {
            return (!lines.is_empty()).then(|| {
                super::redact::escape(&format!(
                    "it aborted; the last lines it wrote to stderr: {}",
                    tail(&lines)
                ))
            });
        };
        let location = lines[at]
            .split("panicked at ")
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(':');
        let message: Vec<&str> = lines[at + 1..]
            .iter()
            .copied()
            .take_while(|l| !l.starts_with("note: "))
            .collect();
        let mut out = format!("{} (at {location})", message.join(" ").trim());
        let before: Vec<&str> = lines[..at]
            .iter()
            .copied()
            .filter(|l| !l.starts_with("Traceback ") && !l.starts_with("  "))
            .collect();
        if !before.is_empty() {
            out.push_str("; before it, on stderr: ");
            out.push_str(&tail(&before));
        }
        Some(super::redact::escape(&out))
    }
}

/// Bytes of a call's stdout and of its stderr that reach the log.
const CAPTURE_BYTES: usize = 64 << 10;

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn truncate(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    true
}

/// The CPU time a call has used: the thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) spent inside
/// polls of the call's future, added up across polls. A guest runs only while its future is
/// polled, and a wait of any kind — `http.fetch`, a WASI sleep or `poll`, a slow stdout — leaves
/// the future pending, so it costs nothing; nor does another task of the runner on the same
/// thread, or another process on the machine.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    /// Nanoseconds used in finished polls.
    spent: std::sync::atomic::AtomicU64,
    /// The thread's CPU clock (ns) when the current poll started; 0 outside a poll.
    poll_started: std::sync::atomic::AtomicU64,
}

impl CpuMeter {
    /// The CPU time used so far, the current poll included. Called on the polling thread.
    pub(crate) fn used(&self) -> Duration {
        use std::sync::atomic::Ordering::Relaxed;
        let mut nanos = self.spent.load(Relaxed);
        let started = self.poll_started.load(Relaxed);
        if started != 0 {
            nanos = nanos.saturating_add(thread_cpu_nanos().saturating_sub(started));
        }
        Duration::from_nanos(nanos)
    }

    /// Runs `future`, metering the CPU time of its polls.
    pub(crate) async fn meter<F: std::future::Future>(self: Arc<Self>, future: F) -> F::Output {
        use std::sync::atomic::Ordering::Relaxed;
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(move |cx| {
            let start = thread_cpu_nanos().max(1);
            self.poll_started.store(start, Relaxed);
            let poll = future.as_mut().poll(cx);
            self.poll_started.store(0, Relaxed);
            self.spent
                .fetch_add(thread_cpu_nanos().saturating_sub(start), Relaxed);
            poll
        })
        .await
    }
}

/// This thread's CPU time in nanoseconds.
#[allow(
    unsafe_code,
    reason = "clock_gettime(2) writes one timespec we own; libc has no safe wrapper"
)]
fn thread_cpu_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut now) };
    if status != 0 {
        return 0;
    }
    u64::try_from(now.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or(0))
}

/// The empty WASI context of one call: stdout and stderr captured, no network, and the
/// builder's defaults for the rest (no environment, arguments or preopens; stdin closed).
fn new_wasi_ctx(stdout: &Captured, stderr: &Captured) -> WasiCtx {
    let mut builder = WasiCtx::builder();
    builder
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}

/// The values a config template may name. Unknown values are left out, so their placeholders
/// stay as written and a plugin can tell "not known" from "empty".
fn template_vars(ctx: &DeployContext) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("stage", ctx.stage.clone()),
        ("environment", ctx.environment.clone()),
        ("version", ctx.version.clone()),
        ("component", ctx.component.clone()),
    ];
    if let Some(v) = &ctx.previous_version {
        vars.push(("previous_version", v.clone()));
    }
    if let Some(v) = &ctx.app_version {
        vars.push(("app_version", v.clone()));
        vars.push(("app_ref", crate::context::app_ref(v).to_owned()));
    }
    // A check of one cluster of a stage gets that cluster's workloads: their shared cluster
    // and namespace are its `{{cluster}}` and `{{namespace}}`.
    if let Some(cluster) = ctx.shared(|w| &w.cluster) {
        vars.push(("cluster", cluster.to_owned()));
    }
    if let Some(namespace) = ctx.shared(|w| &w.namespace) {
        vars.push(("namespace", namespace.to_owned()));
    }
    vars
}

/// `template` with each `{{name}}` of `vars` replaced by its value, in one pass: a value is
/// never itself rendered. Unknown names stay as written.
fn render(template: &str, vars: &[(&'static str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let known = after.find("}}").and_then(|close| {
            let name = &after[..close];
            vars.iter()
                .find(|(known, _)| *known == name)
                .map(|(_, value)| (value, close))
        });
        if let Some((value, close)) = known {
            out.push_str(value);
            rest = &after[close + 2..];
        } else {
            out.push('{');
            rest = &rest[open + 1..];
        }
    }
    out.push_str(rest);
    out
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let State {
            wasi,
            table,
            stdout,
            stderr,
            ..
        } = self;
        WasiCtxView {
            ctx: wasi.get_or_insert_with(|| new_wasi_ctx(stdout, stderr)),
            table,
        }
    }
}

impl wit_types::Host for State {}

impl wit_host::Host for State {
    async fn log(&mut self, level: wit_host::Level, message: String) -> wasmtime::Result<()> {
        const MAX_LINE: usize = 4096;
        if !self.log.take(Instant::now()) {
            return Ok(());
        }
        // Redacted and escaped first, then cut: a cut never leaves a secret's head.
        let mut message = self.env.redactor.clean(&message);
        if truncate(&mut message, MAX_LINE) {
            message.push_str(" [truncated]");
        }
        let plugin = self.env.name.as_str();
        match level {
            wit_host::Level::Trace => tracing::trace!(plugin, "{message}"),
            wit_host::Level::Debug => tracing::debug!(plugin, "{message}"),
            wit_host::Level::Info => tracing::info!(plugin, "{message}"),
            wit_host::Level::Warn => tracing::warn!(plugin, "{message}"),
            wit_host::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }

    async fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.env.config.get(&key).map(|v| {
            if self.vars.is_empty() {
                v.clone()
            } else {
                render(v, &self.vars)
            }
        }))
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.env.grants.secret(&name).map(str::to_owned))
    }
}

impl wit_http::Host for State {
    async fn fetch(
        &mut self,
        request: wit_http::Request,
    ) -> wasmtime::Result<Result<wit_http::Response, wit_http::HttpError>> {
        const MAX_FIELD: usize = 2048;
        let deadline = self.started + self.env.limits.wall;
        let redactor = &self.env.redactor;
        // Every field a guest controls goes through the redactor, then is cut.
        let field = |text: &str| {
            let mut text = redactor.clean(text);
            truncate(&mut text, MAX_FIELD);
            text
        };
        let (method, url) = if tracing::enabled!(tracing::Level::DEBUG) {
            (field(&request.method), field(&request.url))
        } else {
            (String::new(), String::new())
        };
        let result = self.env.http.fetch(request, deadline).await;
        let plugin = self.env.name.as_str();
        match &result {
            Ok(response) => {
                tracing::debug!(plugin, %method, %url, status = response.status, "plugin http request");
            }
            Err(error) => {
                tracing::debug!(plugin, %method, %url, error = %field(&format!("{error:?}")), "plugin http request failed");
            }
        }
        Ok(result)
    }
}

/// A bounded in-memory sink for a plugin's stdout or stderr. Writes past the capacity are
/// accepted and dropped, so a chatty plugin neither fails nor grows the runner's memory.
#[derive(Clone, Debug)]
pub(crate) struct Captured {
    inner: Arc<Mutex<(Vec<u8>, usize)>>,
}

impl Captured {
    fn new(capacity: usize) -> Self {
        Captured {
            inner: Arc::new(Mutex::new((Vec::new(), capacity))),
        }
    }

    fn take(&self) -> String {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&std::mem::take(&mut guard.0)).into_owned()
    }

    fn peek(&self) -> String {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&guard.0).into_owned()
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    // Written synchronously, so everything a guest printed (a panic message) is there when it
    // traps; the default adapter copies in a background task and can lose the last lines.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl Captured {
    fn append(&self, bytes: &[u8]) {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (data, capacity) = &mut *guard;
        let room = capacity.saturating_sub(data.len());
        data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Captured {
    async fn ready(&mut self) {}
}

impl OutputStream for Captured {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::{render, template_vars};
    use crate::context::{DeployContext, WorkloadVersion};

    #[test]
    fn a_check_of_one_cluster_renders_its_cluster_and_namespace() {
        let workload = |cluster: &str| WorkloadVersion {
            cluster: cluster.into(),
            namespace: "gitlab".into(),
            workload: "registry".into(),
            container: "registry".into(),
            image: "r:v1".into(),
            version: None,
        };
        let mut ctx: DeployContext = serde_json::from_str(
            r#"{"component":"registry","version":"v2","stage":"gprd","environment":"gprd"}"#,
        )
        .unwrap();
        let template = "{{component}} {{stage}}/{{environment}} {{cluster}} {{namespace}}";
        assert_eq!(
            render(template, &template_vars(&ctx)),
            "registry gprd/gprd {{cluster}} {{namespace}}",
            "unknown without workloads"
        );
        ctx.workloads = vec![workload("gprd-a"), workload("gprd-a")];
        assert_eq!(
            render(template, &template_vars(&ctx)),
            "registry gprd/gprd gprd-a gitlab"
        );
        ctx.workloads.push(workload("gprd-b"));
        assert_eq!(
            render(template, &template_vars(&ctx)),
            "registry gprd/gprd {{cluster}} gitlab",
            "a whole stage over two clusters has no one cluster"
        );
    }

    #[test]
    fn templates_render_known_values_and_keep_unknown_placeholders() {
        let vars = [
            ("stage", "gstg-cny".to_owned()),
            ("version", "{{stage}}".to_owned()),
        ];
        for (template, expected) in [
            ("plain", "plain"),
            ("env={{stage}}", "env=gstg-cny"),
            ("{{stage}}/{{stage}}", "gstg-cny/gstg-cny"),
            ("{{app_version}} {{stage}}", "{{app_version}} gstg-cny"),
            ("{{version}}", "{{stage}}"),
            ("{{{stage}}}", "{gstg-cny}"),
            ("open {{stage", "open {{stage"),
            ("", ""),
        ] {
            assert_eq!(render(template, &vars), expected, "{template}");
        }
    }
}
