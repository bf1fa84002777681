//! Plugin platform costs: compile, cached load, one call in a fresh sandbox, and
//! `tagship plugin run` as a whole process (wall time and peak RSS).
//!
//! Run: `cargo bench -p tagship --bench plugins`. The whole-process figures are printed after
//! criterion's, as medians over repeated runs (criterion is not suited to timing processes).

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]
#![allow(clippy::print_stdout, reason = "a bench binary reports on stdout")]
#![allow(clippy::cast_precision_loss, reason = "kilobyte counts far below 2^52")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use tagship::context::DeployContext;
use tagship::plugins::{Grants, Limits, PluginHost, PluginSpec, Source};

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
            let host = PluginHost::with_cache_dir(None).expect("host");
            black_box(
                host.load(spec(Source::Builtin("prometheus-health".into())))
                    .expect("load"),
            )
        });
    });
    let cache = tempfile::tempdir().expect("tempdir");
    PluginHost::with_cache_dir(Some(cache.path().to_owned()))
        .expect("host")
        .load(spec(Source::Builtin("prometheus-health".into())))
        .expect("warm the cache");
    group.bench_function("cached load prometheus-health (disk)", |b| {
        b.iter(|| {
            let host = PluginHost::with_cache_dir(Some(cache.path().to_owned())).expect("host");
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
    let host = PluginHost::with_cache_dir(None).expect("host");
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

criterion_group!(plugin_benches, benches);

fn main() {
    plugin_benches();
    Criterion::default().configure_from_args().final_summary();
    whole_process();
}
