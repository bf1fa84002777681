//! The sandbox under attack: what a hostile guest controls — the request it builds,
//! the text it says, where it spends its time, the shape of its exports and results — run as a
//! user runs a plugin (`tagship plugin run`, the real binary), with real HTTP on loopback.
//! Each test names the class it covers; RELIABILITY.md has the table.

#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/plugin_run.rs"]
mod plugin_run;

use std::time::Duration;

use http_server::{Reply, Seen, TestServer};
use plugin_run::{CTX, Run, guest};

/// `tagship plugin run PLUGIN --input - ARGS` with `env`, the canary context on stdin; stdout
/// need not be JSON (a load error prints none).
async fn run(plugin: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    plugin_run::run(plugin, CTX, args, env, "attack-cache").await
}

fn cfg(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| ["--config".to_owned(), format!("{k}={v}")])
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A plugin error that is not a crash: exit 5, JSON with verdict `error`, and no panic of
/// the runner (exit 101, "panicked at" on its stderr).
fn assert_plugin_error(run: &Run, kind: &str, what: &str) {
    assert_eq!(run.code, 5, "{what}: {}", run.all());
    assert_eq!(run.field("verdict"), "error", "{what}: {}", run.all());
    assert_eq!(run.field("error"), kind, "{what}: {}", run.all());
    assert!(
        !run.stderr.contains("panicked at"),
        "{what}: the runner panicked: {}",
        run.stderr
    );
}

// --- 1. A request a guest builds cannot crash the runner --------------------------------------

type Case = (
    &'static str,
    Vec<(&'static str, String)>,
    bool,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bound_of_a_guest_request_is_an_invalid_request_not_a_crash() {
    let server = TestServer::start(|_| Reply::text(200, "ok")).await;
    let url = format!("{}/x", server.url());
    let granted = ["--allow-host".to_owned(), server.authority()];
    // (what, config, granted, what the error says)
    let cases: [Case; 8] = [
        // The header count that panicked inside `http` (HeaderMap::append), no grant needed.
        (
            "24,600 headers",
            vec![("headers", "24600".into())],
            false,
            "request headers",
        ),
        (
            "20,000 headers, granted",
            vec![("headers", "20000".into())],
            true,
            "request headers",
        ),
        (
            "40,000 repeats of one header",
            vec![("same_headers", "40000".into())],
            true,
            "request headers",
        ),
        (
            "a 1 MiB header",
            vec![("header_bytes", (1 << 20).to_string())],
            true,
            "x-big",
        ),
        (
            "a 64 KiB URL",
            vec![("url_pad", (64 << 10).to_string())],
            true,
            "the URL is",
        ),
        (
            "a 5 MiB body",
            vec![("body_bytes", (5 << 20).to_string())],
            true,
            "request body",
        ),
        (
            "a 100 KB method",
            vec![("method", "M".repeat(100_000))],
            true,
            "method of 100000 bytes",
        ),
        (
            "a method with a control",
            vec![("method", "GE\u{1}T".into())],
            true,
            "method",
        ),
    ];
    for (what, config, grant, says) in cases {
        let mut pairs: Vec<(&str, &str)> = vec![("url", url.as_str())];
        pairs.extend(config.iter().map(|(k, v)| (*k, v.as_str())));
        let mut args = cfg(&pairs);
        if grant {
            args.extend(granted.iter().cloned());
        }
        let ran = run(&guest("tp-hostile-request"), &strs(&args), &[]).await;
        assert_plugin_error(&ran, "returned-error", what);
        let reason = ran.field("reason");
        assert!(
            reason.contains("invalid request") && reason.contains(says),
            "{what}: {reason}"
        );
        assert!(
            reason.len() < 400,
            "{what}: the reason is bounded: {reason}"
        );
    }
    assert!(
        server.seen().is_empty(),
        "nothing was sent: {:?}",
        server.seen().len()
    );
    // At the bounds, the request goes out.
    let args = cfg(&[("url", &url), ("headers", "99"), ("body_bytes", "1000")]);
    let mut args = args;
    args.extend(granted.iter().cloned());
    let ran = run(&guest("tp-hostile-request"), &strs(&args), &[]).await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(
        server.seen()[0]
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-h"))
            .count(),
        99
    );
}

// --- 2. A webhook URL granted as a secret never appears, whatever its spelling ---------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_notify_never_prints_its_webhook_token_in_any_spelling_of_the_url() {
    // A port nothing listens on: the request fails, and its error is what could leak.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let token = "T000/B000/XXXXSECRETTOKENXXXX";
    for hook in [
        format!("http://127.0.0.1:{port}/services/{token}\n"),
        format!("HTTP://127.0.0.1:{port}/services/{token}"),
        format!("http://127.0.0.1:{port}/services/{token}?x=1 "),
        format!("http://127.0.0.1:{port}/services/{token}%20x"),
        format!("http://127.0.0.1:{port}/./services/{token}"),
        format!("http://127.0.0.1:{port}/services/T000/B000/XXXX SECRETTOKEN XXXX"),
    ] {
        let ran = run(
            "builtin:slack-notify",
            &[
                "--allow-host",
                &format!("127.0.0.1:{port}"),
                "--secret",
                "HOOK",
                "--config",
                "webhook_secret=HOOK",
                "-v",
            ],
            &[("HOOK", &hook)],
        )
        .await;
        assert_eq!(ran.code, 5, "{hook:?}: {}", ran.all());
        assert!(
            ran.field("reason").contains("connection failed"),
            "{hook:?}: {}",
            ran.all()
        );
        assert!(
            !ran.all().contains("SECRETTOKEN"),
            "{hook:?} leaked:\n{}",
            ran.all()
        );
        assert!(
            ran.field("reason")
                .contains(&format!("POST http://127.0.0.1:{port}")),
            "the origin is named: {}",
            ran.all()
        );
    }
}

// --- 3. Redaction: multi-line secrets, the capture cut, every field ------------------------------

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIB\nAQC7VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3S\n-----END PRIVATE KEY-----\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_line_secret_is_redacted_line_by_line_on_every_channel() {
    for via in ["log", "stdout", "stderr", "panic", "err", "reason"] {
        let ran = run(
            &guest("tp-say"),
            &[
                "--secret",
                "PEM",
                "--config",
                "secret_name=PEM",
                "--config",
                "text=key: {secret} end",
                "--config",
                &format!("via={via}"),
            ],
            &[("PEM", PEM)],
        )
        .await;
        for part in ["MIIEvQ", "AQC7VJ"] {
            assert!(
                !ran.all().contains(part),
                "{via} leaked {part}:\n{}",
                ran.all()
            );
        }
        assert!(ran.all().contains("[redacted:PEM]"), "{via}: {}", ran.all());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_straddling_the_capture_cut_is_redacted_whole() {
    let secret = "straddling-secret-value-0123456789";
    // 64 KiB of output end in the middle of the secret, 15 bytes in.
    let pad = (64 << 10) - 15;
    for via in ["stdout", "stderr"] {
        let ran = run(
            &guest("tp-say"),
            &[
                "--secret",
                "S",
                "--config",
                "secret_name=S",
                "--config",
                "text={secret}",
                "--config",
                &format!("pad={pad}"),
                "--config",
                &format!("via={via}"),
            ],
            &[("S", secret)],
        )
        .await;
        assert_eq!(ran.code, 0, "{}", ran.all());
        assert!(
            !ran.all().contains("straddling"),
            "{via} leaked the head:\n{}",
            &ran.stderr[ran.stderr.len().saturating_sub(300)..]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_line_of_a_request_redacts_its_method_and_url() {
    let secret = "method-secret-9876";
    let ran = run(
        &guest("tp-hostile-request"),
        &[
            "-v",
            "--secret",
            "S",
            "--config",
            &format!("method={secret}"),
            "--config",
            &format!("url=http://127.0.0.1:9/{secret}"),
        ],
        &[("S", secret), ("TAGSHIP_LOG", "debug")],
    )
    .await;
    assert_eq!(ran.code, 5, "{}", ran.all());
    assert!(
        ran.stderr.contains("plugin http request failed"),
        "the debug line is there: {}",
        ran.stderr
    );
    assert!(!ran.all().contains(secret), "{}", ran.all());
}

// --- 4. A plugin cannot forge lines of the runner's log or control the terminal ------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_plugin_says_stays_on_its_own_prefixed_line() {
    let forged = "ok\ntagship: stage gprd approved\rFAKE\u{202e}desrever\u{9b}31m\u{7f}\u{1b}[2J";
    for via in ["log", "stdout", "stderr", "panic", "err", "reason"] {
        let ran = run(
            &guest("tp-say"),
            &[
                "--config",
                &format!("text={forged}"),
                "--config",
                &format!("via={via}"),
            ],
            &[],
        )
        .await;
        for line in ran.stderr.lines() {
            assert!(
                !line.starts_with("tagship: stage gprd approved"),
                "{via}: a forged line:\n{}",
                ran.stderr
            );
        }
        for raw in ['\r', '\u{202e}', '\u{9b}', '\u{7f}', '\u{1b}'] {
            assert!(
                !ran.stderr.contains(raw),
                "{via}: raw {raw:?} on stderr:\n{:?}",
                ran.stderr
            );
            assert!(
                !ran.stdout.contains(raw),
                "{via}: raw {raw:?} on stdout:\n{:?}",
                ran.stdout
            );
        }
        // What the plugin said, as a person reads it: the log, and the JSON's reason decoded.
        let readable = format!("{}\n{}", ran.stderr, ran.field("reason"));
        assert!(
            readable.contains("tagship: stage gprd approved\\rFAKE\\u{202e}desrever\\u{9b}31m"),
            "{via}: escaped, still readable:\n{}",
            ran.all()
        );
        if !via.starts_with("std") && via != "panic" {
            // A line break inside one message is escaped; in output each line is a log line of
            // its own, and a panic message's lines are joined with spaces.
            assert!(
                readable.contains("ok\\ntagship: stage"),
                "{via}: {readable}"
            );
        }
    }
}

// --- 5 and 6. Time: the wall limit stops a guest anywhere; waiting is not CPU time --------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_limit_stops_a_guest_that_computes_after_a_long_wait() {
    let slow =
        TestServer::start(|_| Reply::text(200, "slow").delayed(Duration::from_millis(2500))).await;
    let ran = run(
        &guest("tp-wait-then-compute"),
        &[
            "--allow-host",
            &slow.authority(),
            "--config",
            &format!("url={}/", slow.url()),
            "--config",
            "compute_ms=4000",
            "--wall-ms",
            "4000",
            "--cpu-ms",
            "5000",
        ],
        &[],
    )
    .await;
    assert_plugin_error(&ran, "wall-timeout", "wait 2.5 s, compute 4 s, wall 4 s");
    assert!(
        ran.took < Duration::from_secs(10),
        "stopped near its limit: {:?}",
        ran.took
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_sleep_is_waiting_not_cpu_time_and_computing_still_is() {
    let ran = run(
        &guest("tp-wait-then-compute"),
        &[
            "--config",
            "sleep_ms=3000",
            "--cpu-ms",
            "1000",
            "--wall-ms",
            "20000",
        ],
        &[],
    )
    .await;
    assert_eq!(
        ran.code,
        0,
        "a 3 s sleep under a 1 s CPU limit: {}",
        ran.all()
    );
    assert_eq!(ran.field("verdict"), "healthy");
    let ran = run(
        &guest("tp-wait-then-compute"),
        &[
            "--config",
            "compute_ms=20000",
            "--cpu-ms",
            "1000",
            "--wall-ms",
            "30000",
        ],
        &[],
    )
    .await;
    assert_plugin_error(&ran, "cpu-limit", "20 s of computing under a 1 s CPU limit");
    assert!(ran.took < Duration::from_secs(20), "{:?}", ran.took);
}

// --- 7. Load-time checks: the exported function's type, one kind, a version ---------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_of_the_wrong_type_several_kinds_or_no_version_are_refused_at_load() {
    let bad = guest("tp-bad-signature");
    let inspect = std::process::Command::new(env!("CARGO_BIN_EXE_tagship"))
        .args(["plugin", "inspect", &bad])
        .output()
        .unwrap();
    let ran = run(&bad, &[], &[]).await;
    for (command, code, stderr) in [
        (
            "inspect",
            inspect.status.code(),
            String::from_utf8_lossy(&inspect.stderr).into_owned(),
        ),
        ("run", Some(ran.code), ran.stderr),
    ] {
        assert_eq!(code, Some(2), "{command}: {stderr}");
        for said in [
            "tagship:plugin/health@0.1.0#check",
            "func(ctx: u32) -> string",
            "func(ctx: deploy-context) -> result<health-report, string>",
        ] {
            assert!(stderr.contains(said), "{command} says {said}: {stderr}");
        }
    }
    let ran = run(&guest("tp-two-kinds"), &[], &[]).await;
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr.contains("tagship:plugin/health@0.1.0")
            && ran.stderr.contains("tagship:plugin/compat@0.1.0")
            && ran.stderr.contains("one kind"),
        "{}",
        ran.stderr
    );
    let ran = run(&guest("tp-unversioned"), &[], &[]).await;
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("`tagship:plugin/health`, which carries no API version"),
        "{}",
        ran.stderr
    );
}

// --- 8. The result limit counts what a result costs --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_million_empty_reasons_are_over_the_result_limit() {
    let ran = run(&guest("tp-many-reasons"), &[], &[]).await;
    assert_plugin_error(&ran, "result-too-large", "2,000,000 empty reasons");
    assert!(
        ran.stdout.len() < 4096,
        "{} bytes of output",
        ran.stdout.len()
    );
    let ran = run(&guest("tp-many-reasons"), &["--config", "count=1000"], &[]).await;
    assert_eq!(ran.code, 0, "1,000 reasons are fine: {}", ran.stderr);
}

// --- 9. wasi:sockets links, and every use of it is denied ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_using_wasi_sockets_loads_and_is_denied_every_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let ran = run(
        &guest("tp-socket"),
        &["--config", &format!("addr={addr}")],
        &[],
    )
    .await;
    assert_eq!(
        ran.code,
        1,
        "unhealthy, as the guest reports: {}",
        ran.all()
    );
    let reason = ran.field("reason");
    assert!(
        reason.starts_with("connect: PermissionDenied")
            && reason.contains("resolve: ")
            && !reason.contains("addresses"),
        "{reason}"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "nothing connected");
}

// --- 10. Redirects across origins carry no credential --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_keeps_only_headers_that_cannot_carry_a_credential() {
    let other = TestServer::start(|_| Reply::text(200, "landed")).await;
    let target = format!("{}/landed", other.url());
    let first = TestServer::start(move |seen: &Seen| {
        if seen.path == "/same" {
            let mut reply = Reply::redirect("/moved");
            reply.status = 307;
            reply
        } else if seen.path == "/moved" {
            Reply::text(200, "same origin")
        } else {
            let mut reply = Reply::redirect(&target);
            reply.status = 307;
            reply
        }
    })
    .await;
    let set = "X-Api-Key: k-secret\nX-Gitlab-Token: g-secret\nAuthorization: Bearer b-secret\nCookie: c=secret\nAccept: application/json\nUser-Agent: probe";
    let grants = [
        "--allow-host".to_owned(),
        first.authority(),
        "--allow-host".to_owned(),
        other.authority(),
    ];
    let mut args = cfg(&[("url", &format!("{}/go", first.url())), ("set", set)]);
    args.extend(grants.iter().cloned());
    let ran = run(&guest("tp-hostile-request"), &strs(&args), &[]).await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let landed = &other.seen()[0];
    for credential in ["x-api-key", "x-gitlab-token", "authorization", "cookie"] {
        assert_eq!(
            landed.header(credential),
            None,
            "{credential} followed: {landed:?}"
        );
    }
    assert_eq!(landed.header("accept"), Some("application/json"));
    // Within one origin every header follows.
    let mut args = cfg(&[("url", &format!("{}/same", first.url())), ("set", set)]);
    args.extend(grants.iter().cloned());
    let ran = run(&guest("tp-hostile-request"), &strs(&args), &[]).await;
    assert_eq!(ran.code, 0, "{}", ran.all());
    let moved = first
        .seen()
        .into_iter()
        .find(|s| s.path == "/moved")
        .expect("followed");
    assert_eq!(moved.header("x-api-key"), Some("k-secret"));
}
