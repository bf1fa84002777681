//! Plugin platform costs: compile, cached load, one call in a fresh sandbox, `tagship plugin
//! run` as a whole process (wall time and peak RSS), and a bake: rounds of 6 health checks, each
//! a different configured plugin, through `tagship::wiring::PluginPorts` as the lifecycle runs
//! them, against a loopback HTTP server.
//!
//! Run: `cargo bench -p tagship --bench plugins`. The whole-process figures are printed after
//! criterion's, as medians over repeated runs (criterion is not suited to timing processes).
//! The bake's CPU time and peak RSS come from fresh processes (this binary re-run with
//! `TAGSHIP_BENCH_BAKE_CONFIG` set) that load the 6 plugins and run one bake of 1,002 checks:
//! after criterion's groups, this process's own high-water mark would say nothing about a bake.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]
#![allow(clippy::print_stdout, reason = "a bench binary reports on stdout")]
#![allow(clippy::cast_precision_loss, reason = "kilobyte counts far below 2^52")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use tagship::config::Config;
use tagship::context::DeployContext;
use tagship::lifecycle::StagePlan;
use tagship::lifecycle::ports::{CheckOutcome, CheckResult, Checks as _, StageLive};
use tagship::plugins::{Compiler, Grants, Limits, PluginHost, PluginSpec, Source};
use tagship::wiring::{PluginPorts, RunOptions};

fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("TAGSHIP_GUESTS_DIR")).join(format!("{}.wasm", name.replace('-', "_")))
}

fn spec(source: Source) -> PluginSpec {
    PluginSpec {
        name: "bench".into(),
        source,
        config: BTreeMap::from([("greeting".to_owned(), "hi".to_owned())]),
        grants: Grants::none(),
        limits: Limits::default(),
    }
}

fn ctx() -> DeployContext {
    serde_json::from_str(
        r#"{"component":"registry","version":"v3.1.0","stage":"gstg-cny","environment":"gstg"}"#,
    )
    .expect("valid context")
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("plugin");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("compile prometheus-health (no cache)", |b| {
        b.iter(|| {
            let host = PluginHost::with_cache_dir(None);
            black_box(
                host.load(spec(Source::Builtin("prometheus-health".into())))
                    .expect("load"),
            )
        });
    });
    let cache = tempfile::tempdir().expect("tempdir");
    PluginHost::with_cache_dir(Some(cache.path().to_owned()))
        .load(spec(Source::Builtin("prometheus-health".into())))
        .expect("warm the cache");
    group.bench_function("cached load prometheus-health (disk)", |b| {
        b.iter(|| {
            let host = PluginHost::with_cache_dir(Some(cache.path().to_owned()));
            black_box(
                host.load(spec(Source::Builtin("prometheus-health".into())))
                    .expect("load"),
            )
        });
    });
    group.finish();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let host = PluginHost::with_cache_dir(None);
    let plugin = host
        .load(spec(Source::File(guest("tp-good-health"))))
        .expect("load good plugin");
    let context = ctx();
    let mut group = c.benchmark_group("call");
    group.sample_size(50);
    group.bench_function("health check in a fresh sandbox", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(plugin.check_health(&context).await.expect("healthy")) });
    });
    group.finish();
}

/// With `TAGSHIP_EXAMPLE_PLUGINS` (the folder `tests/plugins/build-examples` fills): one health
/// check in a fresh sandbox, as a bake makes it, by each example written in Python or
/// JavaScript under each compiler, and by the `http-health` built-in (Rust) as the floor: each
/// makes one GET of the loopback backend (keep-alive) and judges the answer.
fn interpreted_benches(c: &mut Criterion, backend: SocketAddr) {
    let Some(dir) = std::env::var_os("TAGSHIP_EXAMPLE_PLUGINS").map(PathBuf::from) else {
        println!("call (interpreted): skipped, TAGSHIP_EXAMPLE_PLUGINS is not set");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("http://{backend}/debug/health");
    let grants = Grants::none()
        .with_hosts(&[backend.to_string()])
        .expect("grant");
    let cache = tempfile::tempdir().expect("tempdir");
    let context = ctx();
    let mut group = c.benchmark_group("call (interpreted)");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    let mut cases: Vec<(String, Source, Compiler)> = vec![(
        "http-health (Rust built-in)".into(),
        Source::Builtin("http-health".into()),
        Compiler::Cranelift,
    )];
    for name in ["python-health", "js-health", "js-quickjs-health"] {
        let path = dir.join(format!("{name}.wasm"));
        if path.is_file() {
            for compiler in [Compiler::Cranelift, Compiler::Winch] {
                cases.push((
                    format!("{name} ({})", compiler.name()),
                    Source::File(path.clone()),
                    compiler,
                ));
            }
        }
    }
    for (label, source, compiler) in cases {
        let host =
            PluginHost::with_cache_dir(Some(cache.path().to_owned())).with_compiler(compiler);
        let plugin = host
            .load(PluginSpec {
                name: label.clone(),
                source,
                config: BTreeMap::from([("url".to_owned(), url.clone())]),
                grants: grants.clone(),
                limits: Limits::default(),
            })
            .expect("load");
        group.bench_function(label.as_str(), |b| {
            b.to_async(&runtime).iter(|| async {
                let report = plugin.check_health(&context).await.expect("a report");
                assert_eq!(report.status, tagship::verdict::HealthStatus::Healthy);
                black_box(report)
            });
        });
    }
    group.finish();
}

/// `tagship plugin run` as a whole process, with a cached built-in that makes one HTTP request
/// to a local server.
fn whole_process() {
    let exe = env!("CARGO_BIN_EXE_tagship");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#;
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    let cache = tempfile::tempdir().expect("tempdir");
    let input = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(
        input.path(),
        r#"{"component":"registry","version":"v3.1.0","stage":"gstg-cny","environment":"gstg"}"#,
    )
    .expect("write input");
    let url = format!("url=http://{addr}");
    let grant = addr.to_string();
    let run = || {
        let started = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(exe)
            .args([
                "-q",
                "plugin",
                "run",
                "builtin:prometheus-health",
                "--input",
            ])
            .arg(input.path())
            .args([
                "--config",
                &url,
                "--config",
                "query=up",
                "--config",
                "pass=== 1",
                "--allow-host",
                &grant,
            ])
            .env("TAGSHIP_CACHE_DIR", cache.path())
            .output()
            .expect("run tagship under /usr/bin/time");
        let elapsed = started.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rss_kib: u64 = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        (elapsed, rss_kib)
    };
    run(); // fills the cache
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..40 {
        let (t, r) = run();
        times.push(t);
        rss.push(r);
    }
    times.sort();
    rss.sort_unstable();
    let pct = |v: &[Duration], p: usize| v[(v.len() - 1) * p / 100];
    println!(
        "process/tagship plugin run (cached built-in, 1 HTTP request): wall p50 {:.2} ms, p10 {:.2} ms, p90 {:.2} ms (includes /usr/bin/time's own fork+exec)",
        pct(&times, 50).as_secs_f64() * 1e3,
        pct(&times, 10).as_secs_f64() * 1e3,
        pct(&times, 90).as_secs_f64() * 1e3,
    );
    println!(
        "process/tagship plugin run: peak RSS p50 {:.1} MB, max {:.1} MB",
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0
    );
}

/// Rounds in one bake: 167 rounds of 6 checks, 1,002 checks.
const BAKE_ROUNDS: usize = 167;

/// Set (to the tagship.toml to use) in the child process that measures one bake.
const BAKE_CHILD_CONFIG: &str = "TAGSHIP_BENCH_BAKE_CONFIG";
/// The compiled-component cache the child loads from.
const BAKE_CHILD_CACHE: &str = "TAGSHIP_BENCH_BAKE_CACHE";

/// A loopback HTTP/1.1 server with keep-alive (each plugin's client keeps its connection), one
/// thread per connection, answering what the 6 configured checks ask for. Plain threads, not
/// the bench's tokio runtime, so it takes no worker from the checks.
struct Backend {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || serve(stream, &counter));
            }
        });
        Backend { addr, served }
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream, served: &AtomicU64) {
    let _ = stream.set_nodelay(true);
    let mut pending = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Every request is a GET without a body: a head ends the request.
        let end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        pending.drain(..end);
        let path = head.split_whitespace().nth(1).unwrap_or("/");
        let (status, extra, body) = answer(path);
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
        served.fetch_add(1, Ordering::SeqCst);
    }
}

/// Status line, extra header lines and body for `path`: a healthy answer for each check.
fn answer(path: &str) -> (&'static str, &'static str, &'static str) {
    if path.starts_with("/api/v1/query?") {
        (
            "200 OK",
            "",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"env":"gstg","stage":"cny","type":"registry"},"value":[1700000000.0,"1"]}]}}"#,
        )
    } else if path == "/v2/" {
        (
            "200 OK",
            "gitlab-container-registry-version: v3.1.0-gitlab\r\n",
            "{}",
        )
    } else if path == "/-/readiness" {
        ("204 No Content", "", "")
    } else if path == "/debug/health" {
        (
            "200 OK",
            "",
            r#"{"status":"ok","checks":{"database":"ok","storage":"ok"}}"#,
        )
    } else {
        ("404 Not Found", "", "{}")
    }
}

/// tagship.toml for one stage whose bake runs 6 health-check plugins, two of each built-in
/// health check and two of the example plugin (a `.wasm` file), all granted the backend only.
fn bake_config(backend: SocketAddr) -> String {
    let example = guest("example-health");
    let example = example.display();
    format!(
        r#"[component]
name = "registry"
image = "registry.example.com/gitlab-container-registry"
tag = "{{{{version}}}}-gitlab"

[plugins.prometheus-service]
source = "builtin:prometheus-health"
allow_hosts = ["{backend}"]
config = {{ url = "http://{backend}", pass = "== 1", query = 'min(gitlab_deployment_health:service{{env="{{{{environment}}}}",stage="cny",type="registry"}})' }}

[plugins.prometheus-errors]
source = "builtin:prometheus-health"
allow_hosts = ["{backend}"]
config = {{ url = "http://{backend}", pass = "0.99..", query = 'sum(rate(registry_http_requests_total{{code!~"5.."}}[5m])) / sum(rate(registry_http_requests_total[5m]))' }}

[plugins.registry-version]
source = "builtin:http-health"
allow_hosts = ["{backend}"]
config = {{ url = "http://{backend}/v2/", version_header = "Gitlab-Container-Registry-Version", version_suffix = "-gitlab" }}

[plugins.registry-ready]
source = "builtin:http-health"
allow_hosts = ["{backend}"]
config = {{ url = "http://{backend}/-/readiness", expect_status = "200-299" }}

[plugins.registry-status]
source = "{example}"
allow_hosts = ["{backend}"]
config = {{ url = "http://{backend}/debug/health" }}

[plugins.registry-database]
source = "{example}"
allow_hosts = ["{backend}"]
config = {{ url = "http://{backend}/debug/health", field = "checks.database", expect = "ok" }}

[[stage]]
name = "gstg-cny"
environment = "gstg"
namespace = "gstg-cny"
workloads = [{{ deployment = "gitlab-registry", containers = ["registry"] }}]

[stage.bake]
checks = ["prometheus-service", "prometheus-errors", "registry-version", "registry-ready", "registry-status", "registry-database"]
duration = "10m"
interval = "5s"
"#
    )
}

/// Everything a bake needs: the configuration, the stage's plan and the context its checks get.
struct Bake {
    config: Config,
    stage: StagePlan,
    checks: Vec<String>,
    ctx: DeployContext,
}

impl Bake {
    fn load(path: &Path) -> Bake {
        let config = tagship::config::load(path).unwrap_or_else(|e| panic!("{e}"));
        let plan = tagship::wiring::plan(
            &config,
            "v3.1.0".parse().expect("version"),
            &RunOptions::default(),
        );
        let stage = plan.stages[0].clone();
        let checks = stage.bake.as_ref().expect("the stage bakes").checks.clone();
        assert_eq!(checks.len(), 6);
        let ctx = tagship::lifecycle::context_for(&plan, Some(&stage), None, &StageLive::default());
        Bake {
            config,
            stage,
            checks,
            ctx,
        }
    }

    /// Ports with every plugin of the bake loaded (from the cache in `cache`).
    fn ports(&self, cache: &Path) -> PluginPorts<'_> {
        let host = PluginHost::with_cache_dir(Some(cache.to_owned()));
        let ports = PluginPorts::new(&self.config, host);
        ports.preload().expect("the 6 plugins load");
        ports
    }

    /// One round: the 6 checks at once, as the lifecycle's bake runs them; every one must pass.
    async fn round(&self, ports: &PluginPorts<'_>) -> Vec<CheckResult> {
        let results = ports.run(&self.stage, &self.checks, &self.ctx).await;
        assert!(
            results.len() == self.checks.len()
                && results.iter().all(|r| r.outcome == CheckOutcome::Pass),
            "every check must pass: {results:?}"
        );
        results
    }
}

/// One round, and a whole bake with its rounds back to back (the bake's `interval` sleeps left
/// out). The backend's threads run in this process and share its cores; the children of
/// [`bake_process`] leave it to this process, so their CPU time is the checks' own.
fn bake_benches(c: &mut Criterion, config: &Path, cache: &Path) {
    // The runtime tagship's `main` runs everything on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bake = Bake::load(config);
    let ports = bake.ports(cache);
    let mut group = c.benchmark_group("bake");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(6));
    group.bench_function("round of 6 checks (6 plugins)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(bake.round(&ports).await) });
    });
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements((BAKE_ROUNDS * 6) as u64));
    group.bench_function("bake of 1,002 checks (167 rounds of 6)", |b| {
        b.to_async(&runtime).iter(|| async {
            for _ in 0..BAKE_ROUNDS {
                black_box(bake.round(&ports).await);
            }
        });
    });
    group.finish();
}

/// CPU time (user, system) of the whole process so far.
#[allow(
    unsafe_code,
    reason = "getrusage is the call that reports the process's CPU time"
)]
fn cpu_time() -> (Duration, Duration) {
    // SAFETY: `rusage` is plain data, valid when zeroed; getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a live `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.unsigned_abs())
            + Duration::from_micros(t.tv_usec.unsigned_abs())
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

/// A `kB` field of /proc/self/status (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The child: load the 6 plugins from the cache, run one bake, print its figures on one line.
fn bake_child(config: &Path, cache: &Path) {
    let start_rss = status_kib("VmRSS");
    let started = Instant::now();
    let (user0, sys0) = cpu_time();
    // The runtime tagship's `main` runs everything on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bake = Bake::load(config);
    let ports = bake.ports(cache);
    let loaded = started.elapsed();
    let (user1, sys1) = cpu_time();
    let loaded_hwm = status_kib("VmHWM");
    let bake_started = Instant::now();
    runtime.block_on(async {
        for _ in 0..BAKE_ROUNDS {
            bake.round(&ports).await;
        }
    });
    let baked = bake_started.elapsed();
    let (user2, sys2) = cpu_time();
    let us = |d: Duration| d.as_micros();
    println!(
        "bake-child load_wall_us={} load_user_us={} load_sys_us={} bake_wall_us={} bake_user_us={} bake_sys_us={} start_rss_kib={start_rss} loaded_hwm_kib={loaded_hwm} hwm_kib={} end_rss_kib={}",
        us(loaded),
        us(user1.saturating_sub(user0)),
        us(sys1.saturating_sub(sys0)),
        us(baked),
        us(user2.saturating_sub(user1)),
        us(sys2.saturating_sub(sys1)),
        status_kib("VmHWM"),
        status_kib("VmRSS"),
    );
}

/// Runs one bake in each of a few fresh processes and prints the medians.
fn bake_process(config: &Path, cache: &Path, backend: &Backend) {
    const RUNS: usize = 7;
    let exe = std::env::current_exe().expect("this bench's path");
    let mut runs: Vec<BTreeMap<String, u64>> = Vec::new();
    for _ in 0..RUNS {
        let before = backend.served();
        let out = Command::new(&exe)
            .env(BAKE_CHILD_CONFIG, config)
            .env(BAKE_CHILD_CACHE, cache)
            .output()
            .expect("run the bake child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            backend.served() - before,
            (BAKE_ROUNDS * 6) as u64,
            "each check makes exactly one request"
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("bake-child "))
            .expect("the child's figures");
        runs.push(
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
                .collect(),
        );
    }
    let stat = |key: &str| {
        let mut v: Vec<u64> = runs.iter().map(|r| r[key]).collect();
        v.sort_unstable();
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let sum = |a: &str, b: &str| {
        let mut v: Vec<u64> = runs.iter().map(|r| r[a] + r[b]).collect();
        v.sort_unstable();
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let ms = |us: u64| us as f64 / 1e3;
    let mb = |kib: u64| kib as f64 / 1024.0;
    let checks = BAKE_ROUNDS * 6;
    let (wall, wall_min, wall_max) = stat("bake_wall_us");
    let (cpu, cpu_min, cpu_max) = sum("bake_user_us", "bake_sys_us");
    let (user, ..) = stat("bake_user_us");
    let (sys, ..) = stat("bake_sys_us");
    println!(
        "process/bake of {checks} checks (6 plugins, {BAKE_ROUNDS} rounds), median of {RUNS} fresh processes [min–max]:"
    );
    println!(
        "  bake wall {:.1} ms [{:.1}–{:.1}]; CPU user+sys {:.1} ms [{:.1}–{:.1}] (user {:.1}, sys {:.1}) = {:.1} ms per 1,000 checks",
        ms(wall),
        ms(wall_min),
        ms(wall_max),
        ms(cpu),
        ms(cpu_min),
        ms(cpu_max),
        ms(user),
        ms(sys),
        ms(cpu) * 1000.0 / checks as f64,
    );
    let (load_wall, ..) = stat("load_wall_us");
    let (load_cpu, ..) = sum("load_user_us", "load_sys_us");
    println!(
        "  before it: runtime + config + 6 plugins from the disk cache, wall {:.1} ms, CPU {:.1} ms",
        ms(load_wall),
        ms(load_cpu)
    );
    let (rss_start, ..) = stat("start_rss_kib");
    let (loaded, ..) = stat("loaded_hwm_kib");
    let (hwm, hwm_min, hwm_max) = stat("hwm_kib");
    let (end, ..) = stat("end_rss_kib");
    println!(
        "  peak RSS (VmHWM) {:.1} MB [{:.1}–{:.1}]; RSS at start {:.1} MB, peak after loading the plugins {:.1} MB, RSS at the end {:.1} MB",
        mb(hwm),
        mb(hwm_min),
        mb(hwm_max),
        mb(rss_start),
        mb(loaded),
        mb(end)
    );
}

fn main() {
    if let (Some(config), Some(cache)) = (
        std::env::var_os(BAKE_CHILD_CONFIG),
        std::env::var_os(BAKE_CHILD_CACHE),
    ) {
        bake_child(Path::new(&config), Path::new(&cache));
        return;
    }
    let backend = Backend::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tagship.toml");
    std::fs::write(&config, bake_config(backend.addr)).expect("write tagship.toml");
    let cache = dir.path().join("cache");

    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    interpreted_benches(&mut criterion, backend.addr);
    bake_benches(&mut criterion, &config, &cache);
    criterion.final_summary();
    whole_process();
    bake_process(&config, &cache, &backend);
}
