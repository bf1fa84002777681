//! The plugin sandbox against real guest programs, one per behaviour (built from
//! `plugins/test-programs` by the build script): every hostile plugin ends in the expected typed
//! error within its limit, and the same host then serves a good plugin correctly.

#[path = "support/guests.rs"]
mod guests;
#[path = "support/http_server.rs"]
mod http_server;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use guests::{ctx, spec};
use http_server::{Reply, TestServer};
use tagship::plugins::{
    Compiler, Grants, Limits, Plugin, PluginError, PluginHost, PluginSpec, Source,
};
use tagship::verdict::HealthStatus;

/// Tight limits so hostile guests are stopped quickly.
fn tight() -> Limits {
    Limits {
        cpu: Duration::from_millis(300),
        wall: Duration::from_secs(3),
        memory_bytes: 16 << 20,
        ..Limits::default()
    }
}

fn host() -> PluginHost {
    guests::host("sandbox-cache")
}

fn load(host: &PluginHost, name: &str, config: &[(&str, &str)], grants: Grants) -> Plugin {
    guests::load(host, name, config, grants, tight())
}

async fn good_plugin_still_works(host: &PluginHost) {
    let good = load(
        host,
        "tp-good-health",
        &[("greeting", "still here")],
        Grants::none(),
    );
    let report = good
        .check_health(&ctx())
        .await
        .expect("the good plugin runs after a hostile one");
    assert_eq!(report.status, HealthStatus::Healthy);
    assert!(report.reason.contains("still here"), "{}", report.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_plugin_reads_its_config_and_reports_healthy() {
    let host = host();
    let plugin = load(
        &host,
        "tp-good-health",
        &[("greeting", "hello {{stage}}")],
        Grants::none(),
    );
    let report = plugin.check_health(&ctx()).await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(report.value, Some(1.0));
    assert!(
        report.reason.contains("hello gstg-cny"),
        "templates are rendered per call: {}",
        report.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_at_its_cpu_limit() {
    let host = host();
    let plugin = load(&host, "tp-infinite-loop", &[], Grants::none());
    let started = Instant::now();
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    assert!(matches!(err, PluginError::CpuLimit { .. }), "{err}");
    assert!(
        err.to_string().contains("tp-infinite-loop") && err.to_string().contains("CPU limit"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped after {:?}",
        started.elapsed()
    );
    good_plugin_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_at_its_memory_limit() {
    let host = host();
    let plugin = load(&host, "tp-memory-bomb", &[], Grants::none());
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    match &err {
        PluginError::MemoryLimit { limit, asked, .. } => {
            assert_eq!(*limit, 16 << 20);
            assert!(*asked > 16 << 20);
        }
        other => panic!("expected a memory limit error, got: {other}"),
    }
    assert!(err.to_string().contains("memory limit of 16 MiB"), "{err}");
    good_plugin_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_stopped_as_a_stack_overflow() {
    let host = host();
    let plugin = load(&host, "tp-deep-recursion", &[], Grants::none());
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    // Which guard trips first depends on frame sizes: wasm's own stack limit, or the bottom of
    // the guest's shadow stack in linear memory. Both must say it was the stack.
    let is_stack = match &err {
        PluginError::StackOverflow { .. } => true,
        PluginError::Trapped { trap, .. } => trap.contains("stack overflow"),
        _ => false,
    };
    assert!(is_stack, "{err}");
    good_plugin_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_with_its_message() {
    let host = host();
    let plugin = load(&host, "tp-panic", &[], Grants::none());
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    match &err {
        PluginError::Panicked { message, .. } => {
            assert!(
                message.starts_with("tp-panic: deliberate panic (at "),
                "{message}"
            );
        }
        other => panic!("expected a panic, got: {other}"),
    }
    good_plugin_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_result_is_refused() {
    let host = host();
    let plugin = load(&host, "tp-oversized-result", &[], Grants::none());
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    match &err {
        PluginError::ResultTooLarge { size, limit, .. } => {
            assert_eq!(*limit, 1 << 20);
            assert!(*size > *limit);
        }
        other => panic!("expected a result-size error, got: {other}"),
    }
    good_plugin_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_an_ungranted_host_is_denied_as_an_error_not_a_crash() {
    let server = TestServer::start(|_| Reply::text(200, "ok")).await;
    let host = host();
    let plugin = load(
        &host,
        "tp-http-ungranted",
        &[("url", &server.url())],
        Grants::none(),
    );
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    assert!(matches!(err, PluginError::Returned { .. }), "{err}");
    assert!(err.to_string().contains("not granted"), "{err}");
    assert!(server.seen().is_empty(), "no request may leave the sandbox");

    // Granted, the same plugin gets through.
    let granted = load(
        &host,
        "tp-http-ungranted",
        &[("url", &server.url())],
        Grants::none().with_hosts(&[server.authority()]).unwrap(),
    );
    let report = granted.check_health(&ctx()).await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_a_granted_host_to_an_ungranted_one_is_denied() {
    let elsewhere = TestServer::start(|_| Reply::text(200, "secret stuff")).await;
    let target = format!("{}/stolen", elsewhere.url());
    let granted = TestServer::start(move |_| Reply::redirect(&target)).await;
    let host = host();
    let plugin = load(
        &host,
        "tp-redirect",
        &[("url", &granted.url())],
        Grants::none().with_hosts(&[granted.authority()]).unwrap(),
    );
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    assert!(err.to_string().contains("not granted"), "{err}");
    assert_eq!(granted.seen().len(), 1);
    assert!(
        elsewhere.seen().is_empty(),
        "the redirect target must never be contacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_system_is_not_there() {
    let host = host();
    let plugin = load(&host, "tp-read-file", &[], Grants::none());
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    assert!(err.to_string().contains("file access denied"), "{err}");
    good_plugin_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_and_arguments_are_empty() {
    let host = host();
    let plugin = load(&host, "tp-read-env", &[], Grants::none());
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    assert!(err.to_string().contains("no environment"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_rate_limited_and_the_call_completes() {
    let host = host();
    // 100,000 host calls are real work for the guest; give it the default CPU budget.
    let plugin = host
        .load(spec("tp-log-flood", &[], Grants::none(), Limits::default()))
        .unwrap();
    let report = plugin.check_health(&ctx()).await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy);
    good_plugin_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_secret_is_readable_and_redacted_from_what_the_plugin_returns() {
    let host = host();
    let grants =
        Grants::none().with_secret("TAGSHIP_TEST_TOKEN", Some("hunter2-very-secret".into()));
    let plugin = load(
        &host,
        "tp-secret-leak",
        &[("secret_name", "TAGSHIP_TEST_TOKEN")],
        grants,
    );
    let outcome = plugin.check_health(&ctx()).await;
    let text = match outcome {
        Ok(report) => report.reason,
        Err(e) => e.to_string(),
    };
    assert!(
        !text.contains("hunter2-very-secret"),
        "secret leaked: {text}"
    );
    assert!(
        text.contains("[redacted:TAGSHIP_TEST_TOKEN]"),
        "the plugin did read it: {text}"
    );

    // Not granted: the plugin reads nothing.
    let plugin = load(
        &host,
        "tp-secret-leak",
        &[("secret_name", "PATH")],
        Grants::none(),
    );
    let text = match plugin.check_health(&ctx()).await {
        Ok(report) => report.reason,
        Err(e) => e.to_string(),
    };
    assert!(
        !text.contains("/usr/bin"),
        "an ungranted variable leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_for_another_api_version_is_refused_naming_both() {
    let err = host()
        .load(spec("tp-wrong-api", &[], Grants::none(), Limits::default()))
        .unwrap_err();
    assert!(matches!(err, PluginError::IncompatibleApi { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("tagship:plugin@0.2.0") && text.contains("tagship:plugin@0.1.0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_of_no_known_world_is_refused() {
    let err = host()
        .load(spec("tp-no-world", &[], Grants::none(), Limits::default()))
        .unwrap_err();
    assert!(matches!(err, PluginError::NoKnownWorld { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_modules_and_non_wasm_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"#!/bin/sh\necho hi\n").unwrap();
    let load_file = |path: &std::path::Path| {
        host().load(PluginSpec {
            name: "x".into(),
            source: Source::File(path.to_owned()),
            config: BTreeMap::new(),
            grants: Grants::none(),
            limits: Limits::default(),
        })
    };
    assert!(matches!(
        load_file(&core).unwrap_err(),
        PluginError::CoreModule { .. }
    ));
    assert!(matches!(
        load_file(&junk).unwrap_err(),
        PluginError::NotWasm { .. }
    ));
    let missing = load_file(&dir.path().join("missing.wasm")).unwrap_err();
    assert!(missing.to_string().contains("missing.wasm"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_used_as_the_wrong_kind_says_so() {
    let host = host();
    let plugin = load(&host, "tp-notifier-ok", &[], Grants::none());
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    assert!(matches!(err, PluginError::WrongKind { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_are_cached_on_disk_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("plugins");
    let first = PluginHost::with_cache_dir(Some(cache.clone()));
    first
        .load(spec(
            "tp-good-health",
            &[],
            Grants::none(),
            Limits::default(),
        ))
        .unwrap();
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "cwasm"));
    let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    let second = PluginHost::with_cache_dir(Some(cache.clone()));
    let plugin = second
        .load(spec(
            "tp-good-health",
            &[],
            Grants::none(),
            Limits::default(),
        ))
        .unwrap();
    assert_eq!(
        plugin.check_health(&ctx()).await.unwrap().status,
        HealthStatus::Healthy
    );
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        modified,
        "the artifact was reused, not rewritten"
    );

    // An artifact others could have written is not trusted: it is recompiled over. (Written
    // beside and renamed over, as anything that writes into the cache must: the artifact in
    // use is mapped, and rewriting a mapped file in place would crash its user with SIGBUS.)
    let forged = cache.join("forged.tmp");
    std::fs::write(&forged, b"not a precompiled component").unwrap();
    std::fs::set_permissions(
        &forged,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o666),
    )
    .unwrap();
    std::fs::rename(&forged, &files[0]).unwrap();
    let third = PluginHost::with_cache_dir(Some(cache));
    let plugin = third
        .load(spec(
            "tp-good-health",
            &[],
            Grants::none(),
            Limits::default(),
        ))
        .unwrap();
    assert_eq!(
        plugin.check_health(&ctx()).await.unwrap().status,
        HealthStatus::Healthy
    );
}

/// Winch, the baseline compiler `auto` gives interpreters (`TAGSHIP_PLUGIN_COMPILER`), keeps
/// every limit: the epoch still interrupts a loop, the pool still caps memory, and a good plugin
/// still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_winch_the_cpu_and_memory_limits_hold_and_a_good_plugin_answers() {
    let host = guests::host("sandbox-winch-cache").with_compiler(Compiler::Winch);
    let looping = load(&host, "tp-infinite-loop", &[], Grants::none());
    let started = Instant::now();
    let err = looping.check_health(&ctx()).await.unwrap_err();
    assert!(matches!(err, PluginError::CpuLimit { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let bomb = load(&host, "tp-memory-bomb", &[], Grants::none());
    let err = bomb.check_health(&ctx()).await.unwrap_err();
    assert!(matches!(err, PluginError::MemoryLimit { .. }), "{err}");

    good_plugin_still_works(&host).await;
}

#[test]
fn each_compiler_has_its_own_cache_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = || {
        std::fs::read_dir(dir.path())
            .expect("the cache")
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .count()
    };
    let load_with = |compiler| {
        let host = PluginHost::with_cache_dir(Some(dir.path().to_owned())).with_compiler(compiler);
        guests::load(&host, "tp-good-health", &[], Grants::none(), tight());
    };
    load_with(Compiler::Cranelift);
    assert_eq!(artifacts(), 1);
    load_with(Compiler::Winch);
    assert_eq!(artifacts(), 2, "Winch's artifact is not Cranelift's");
    load_with(Compiler::Cranelift);
    load_with(Compiler::Winch);
    assert_eq!(artifacts(), 2, "both found in the cache the second time");
}
