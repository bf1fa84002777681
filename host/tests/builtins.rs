//! The built-in plugins, run as a user runs them (`tagship plugin run`, the real binary) against
//! real HTTP servers on loopback: right verdicts for good and bad answers, and a denial (an
//! error from the plugin, exit 5) when the host is not granted.

#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/plugin_run.rs"]
mod plugin_run;

use http_server::{Reply, Seen, TestServer};
use plugin_run::{CTX, Run};

/// `tagship plugin run PLUGIN --input - ARGS` with `input` on stdin and `env`; its stdout must
/// be JSON (a built-in always loads).
async fn run(plugin: &str, input: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let run = plugin_run::run(plugin, input, args, env, "tagship-cache").await;
    assert!(
        !run.json.is_null(),
        "stdout is not JSON: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    run
}

fn verdict(run: &Run) -> &str {
    run.json["verdict"].as_str().unwrap_or_default()
}

fn reason(run: &Run) -> String {
    run.json["reason"].as_str().unwrap_or_default().to_owned()
}

fn prometheus_vector(series: &[(&str, &str)]) -> String {
    let result: Vec<String> = series
        .iter()
        .map(|(labels, value)| format!(r#"{{"metric":{labels},"value":[1700000000.0,"{value}"]}}"#))
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        result.join(",")
    )
}

async fn prometheus(body: String) -> TestServer {
    TestServer::start(move |seen: &Seen| {
        if seen.path.starts_with("/api/v1/query") {
            Reply::json(200, &body)
        } else {
            Reply::text(404, "not found")
        }
    })
    .await
}

async fn prometheus_run(server: &TestServer, query: &str, pass: &str) -> Run {
    let url = format!("url={}", server.url());
    let query = format!("query={query}");
    let pass = format!("pass={pass}");
    run(
        "builtin:prometheus-health",
        CTX,
        &[
            "--config",
            &url,
            "--config",
            &query,
            "--config",
            &pass,
            "--allow-host",
            &server.authority(),
        ],
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_health_is_healthy_when_the_rule_reads_one() {
    let server = prometheus(prometheus_vector(&[(
        r#"{"env":"gstg","stage":"cny"}"#,
        "1",
    )]))
    .await;
    let r = prometheus_run(
        &server,
        r#"gitlab_deployment_health:service{env="{{environment}}",type="registry"}"#,
        "== 1",
    )
    .await;
    assert_eq!((r.code, verdict(&r)), (0, "healthy"), "{}", r.stderr);
    assert_eq!(r.json["value"], 1.0);
    let seen = &server.seen()[0];
    let query = url::form_urlencoded::parse(seen.path.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "query")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(
        query, r#"gitlab_deployment_health:service{env="gstg",type="registry"}"#,
        "placeholders rendered, PromQL braces kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_health_is_unhealthy_when_the_rule_reads_zero() {
    let server = prometheus(prometheus_vector(&[(r#"{"env":"gstg"}"#, "0")])).await;
    let r = prometheus_run(&server, "health", "== 1").await;
    assert_eq!((r.code, verdict(&r)), (1, "unhealthy"), "{}", r.stderr);
    assert_eq!(r.json["value"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_health_names_the_worst_of_several_series() {
    let server = prometheus(prometheus_vector(&[
        (r#"{"cluster":"gprd-a"}"#, "1"),
        (r#"{"cluster":"gprd-b"}"#, "0"),
    ]))
    .await;
    let r = prometheus_run(&server, "health", "== 1").await;
    assert_eq!((r.code, verdict(&r)), (1, "unhealthy"));
    assert!(reason(&r).contains("gprd-b"), "{}", reason(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_health_is_unknown_on_an_empty_result_and_shows_the_query() {
    let server = prometheus(prometheus_vector(&[])).await;
    let r = prometheus_run(&server, "absent_metric", "== 1").await;
    assert_eq!((r.code, verdict(&r)), (3, "unknown"));
    assert!(reason(&r).contains("absent_metric"), "{}", reason(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_health_checks_a_range() {
    let server = prometheus(prometheus_vector(&[("{}", "0.95")])).await;
    let r = prometheus_run(&server, "ratio", "0.99..").await;
    assert_eq!((r.code, verdict(&r)), (1, "unhealthy"));
    let r = prometheus_run(&server, "ratio", "0.9..1").await;
    assert_eq!((r.code, verdict(&r)), (0, "healthy"));
    let r = prometheus_run(&server, "ratio", "..0.5").await;
    assert_eq!((r.code, verdict(&r)), (1, "unhealthy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_health_is_denied_without_a_grant() {
    let server = prometheus(prometheus_vector(&[("{}", "1")])).await;
    let url = format!("url={}", server.url());
    let r = run(
        "builtin:prometheus-health",
        CTX,
        &[
            "--config",
            &url,
            "--config",
            "query=up",
            "--config",
            "pass=== 1",
        ],
        &[],
    )
    .await;
    assert_eq!((r.code, verdict(&r)), (5, "error"));
    assert!(reason(&r).contains("not granted"), "{}", reason(&r));
    assert!(server.seen().is_empty());
}

async fn registry(version: &'static str, status: u16) -> TestServer {
    TestServer::start(move |_| {
        Reply::json(status, "{}").header("Gitlab-Container-Registry-Version", version)
    })
    .await
}

async fn http_health(server: &TestServer, extra: &[&str], grant: bool) -> Run {
    let url = format!("url={}/v2/", server.url());
    let mut args = vec!["--config", &url];
    args.extend_from_slice(extra);
    let authority = server.authority();
    if grant {
        args.extend_from_slice(&["--allow-host", &authority]);
    }
    run("builtin:http-health", CTX, &args, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_proves_the_target_version_is_serving() {
    let header = [
        "--config",
        "version_header=Gitlab-Container-Registry-Version",
    ];
    let new = registry("v3.1.0", 200).await;
    let r = http_health(&new, &header, true).await;
    assert_eq!((r.code, verdict(&r)), (0, "healthy"), "{}", r.stderr);

    let old = registry("v3.0.0", 200).await;
    let r = http_health(&old, &header, true).await;
    assert_eq!((r.code, verdict(&r)), (1, "unhealthy"));
    assert!(reason(&r).contains("v3.0.0"), "{}", reason(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_fails_on_an_unexpected_status_and_is_denied_without_a_grant() {
    let down = registry("v3.1.0", 503).await;
    let r = http_health(&down, &[], true).await;
    assert_eq!((r.code, verdict(&r)), (1, "unhealthy"));
    assert!(reason(&r).contains("503"), "{}", reason(&r));

    let up = registry("v3.1.0", 200).await;
    let r = http_health(&up, &[], false).await;
    assert_eq!((r.code, verdict(&r)), (5, "error"));
    assert!(up.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_notify_posts_blocks_to_the_secret_webhook_and_never_prints_it() {
    let slack = TestServer::start(|_| Reply::text(200, "ok")).await;
    let hook = format!("{}/services/T000/B000/very-secret-token", slack.url());
    let r = run(
        "builtin:slack-notify",
        CTX,
        &[
            "--secret",
            "SLACK_WEBHOOK_URL",
            "--allow-host",
            &slack.authority(),
        ],
        &[("SLACK_WEBHOOK_URL", &hook)],
    )
    .await;
    assert_eq!((r.code, verdict(&r)), (0, "delivered"), "{}", r.stderr);
    let seen = &slack.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/services/T000/B000/very-secret-token");
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert!(body["blocks"].is_array(), "{body}");
    assert!(
        body.to_string().contains("gstg-cny") && body.to_string().contains("v3.1.0"),
        "{body}"
    );

    let failing = TestServer::start(|_| Reply::text(500, "boom")).await;
    let hook = format!("{}/services/very-secret-token", failing.url());
    let r = run(
        "builtin:slack-notify",
        CTX,
        &[
            "--secret",
            "SLACK_WEBHOOK_URL",
            "--allow-host",
            &failing.authority(),
        ],
        &[("SLACK_WEBHOOK_URL", &hook)],
    )
    .await;
    assert_eq!((r.code, verdict(&r)), (5, "failed"));
    assert!(reason(&r).contains("500"), "{}", reason(&r));
    assert!(!r.stderr.contains("very-secret-token") && !reason(&r).contains("very-secret-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_notify_signs_the_body_with_hmac_sha256() {
    use hmac::Mac as _;
    let receiver = TestServer::start(|_| Reply::text(204, "")).await;
    let url = format!("url={}/hook", receiver.url());
    let r = run(
        "builtin:webhook-notify",
        CTX,
        &[
            "--config",
            &url,
            "--secret",
            "TAGSHIP_WEBHOOK_SECRET",
            "--allow-host",
            &receiver.authority(),
        ],
        &[("TAGSHIP_WEBHOOK_SECRET", "signing-key-123")],
    )
    .await;
    assert_eq!((r.code, verdict(&r)), (0, "delivered"), "{}", r.stderr);
    let seen = &receiver.seen()[0];
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"signing-key-123").unwrap();
    mac.update(&seen.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(seen.header("x-tagship-signature"), Some(expected.as_str()));
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body["kind"], "test");
    assert_eq!(body["context"]["stage"], "gstg-cny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_notify_comments_on_an_issue_with_the_token() {
    let gitlab = TestServer::start(|_| Reply::json(201, r#"{"id":1}"#)).await;
    let api = format!("api_url={}/api/v4", gitlab.url());
    let r = run(
        "builtin:gitlab-notify",
        CTX,
        &[
            "--config",
            &api,
            "--config",
            "project=group/registry-deploys",
            "--config",
            "issue_iid=42",
            "--secret",
            "GITLAB_TOKEN",
            "--allow-host",
            &gitlab.authority(),
        ],
        &[("GITLAB_TOKEN", "glpat-abcdef123456")],
    )
    .await;
    assert_eq!((r.code, verdict(&r)), (0, "delivered"), "{}", r.stderr);
    let seen = &gitlab.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.path,
        "/api/v4/projects/group%2Fregistry-deploys/issues/42/notes"
    );
    assert_eq!(seen.header("private-token"), Some("glpat-abcdef123456"));
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert!(body["body"].as_str().unwrap().contains("v3.1.0"), "{body}");
}

async fn rails(min: &'static str) -> TestServer {
    TestServer::start(move |seen: &Seen| {
        if seen.path.contains("GITLAB_CONTAINER_REGISTRY_VERSION") {
            Reply::text(200, &format!("{min}\n"))
        } else {
            Reply::text(404, "not found")
        }
    })
    .await
}

async fn compat_run(server: &TestServer, version: &str, path: &str) -> Run {
    let input = format!(
        r#"{{"component":"registry","version":"{version}","stage":"gprd","environment":"gprd","app_version":"v17.5.0"}}"#
    );
    let url = format!("min_version_url={}{path}", server.url());
    run(
        "builtin:rails-compat",
        &input,
        &["--config", &url, "--allow-host", &server.authority()],
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rails_compat_compares_the_target_with_the_apps_minimum() {
    let app = rails("v3.1.0").await;
    let path = "/raw/{{app_version}}/GITLAB_CONTAINER_REGISTRY_VERSION";
    let r = compat_run(&app, "v3.1.0", path).await;
    assert_eq!((r.code, verdict(&r)), (0, "compatible"), "{}", r.stderr);
    assert_eq!(
        app.seen()[0].path,
        "/raw/v17.5.0/GITLAB_CONTAINER_REGISTRY_VERSION"
    );

    let r = compat_run(&app, "v3.0.0", path).await;
    assert_eq!((r.code, verdict(&r)), (1, "incompatible"));
    let text = reason(&r);
    assert!(text.contains("v3.1.0") && text.contains("v3.0.0"), "{text}");

    let r = compat_run(&app, "v3.1.0-rc1", path).await;
    assert_eq!(
        (r.code, verdict(&r)),
        (1, "incompatible"),
        "a pre-release sorts below its release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rails_compat_cannot_decide_when_the_minimum_is_missing() {
    let app = rails("v3.1.0").await;
    let r = compat_run(&app, "v3.1.0", "/raw/nowhere").await;
    assert_eq!((r.code, verdict(&r)), (5, "error"));
    assert!(reason(&r).contains("404"), "{}", reason(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_two_with_a_clear_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagship"))
        .args(["plugin", "run", "builtin:nope", "--input", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not valid") || stderr.contains("no built-in"),
        "{stderr}"
    );

    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), CTX).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagship"))
        .args(["plugin", "run", "builtin:nope", "--input"])
        .arg(input.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no built-in plugin `nope`") && stderr.contains("prometheus-health"),
        "{stderr}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagship"))
        .args([
            "plugin",
            "run",
            "builtin:http-health",
            "--input",
            "-",
            "--config",
            "novalue",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY=VALUE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reports_kind_version_size_and_hash() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagship"))
        .args([
            "plugin",
            "inspect",
            "builtin:prometheus-health",
            "--output",
            "json",
        ])
        .env(
            "TAGSHIP_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tagship-cache"),
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kind"], "health-check");
    assert_eq!(json["api_version"], "0.1.0");
    assert_eq!(json["sha256"].as_str().unwrap().len(), 64);
    assert!(json["size"].as_u64().unwrap() > 1000);
    let imports: Vec<&str> = json["imports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        json["imports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["status"] == "provided" || v["status"] == "denied-at-run-time"),
        "a built-in needs nothing the sandbox lacks: {}",
        json["imports"]
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("tagship:plugin/http@")),
        "{imports:?}"
    );
    assert!(
        !imports
            .iter()
            .any(|i| i.starts_with("wasi:sockets") || i.starts_with("wasi:http")),
        "{imports:?}"
    );
}

type Case<'a> = (&'a str, &'a str, Vec<String>, Vec<(&'a str, String)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_is_denied_without_a_grant_and_sends_nothing() {
    let server = TestServer::start(|_| Reply::text(200, "v3.1.0")).await;
    let url = server.url();
    let compat_input = r#"{"component":"registry","version":"v3.1.0","stage":"gprd","environment":"gprd","app_version":"v17.5.0"}"#;
    let cases: Vec<Case> = vec![
        (
            "builtin:slack-notify",
            CTX,
            vec!["--secret".into(), "SLACK_WEBHOOK_URL".into()],
            vec![("SLACK_WEBHOOK_URL", format!("{url}/hook"))],
        ),
        (
            "builtin:webhook-notify",
            CTX,
            vec!["--config".into(), format!("url={url}/hook")],
            vec![],
        ),
        (
            "builtin:gitlab-notify",
            CTX,
            vec![
                "--config".into(),
                format!("api_url={url}/api/v4"),
                "--config".into(),
                "project=1".into(),
                "--config".into(),
                "issue_iid=1".into(),
                "--secret".into(),
                "GITLAB_TOKEN".into(),
            ],
            vec![("GITLAB_TOKEN", "glpat-0123456789".into())],
        ),
        (
            "builtin:rails-compat",
            compat_input,
            vec!["--config".into(), format!("min_version_url={url}/min")],
            vec![],
        ),
    ];
    for (plugin, input, args, env) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = run(plugin, input, &args, &env).await;
        assert_eq!(r.code, 5, "{plugin}: {}", r.json);
        assert!(
            reason(&r).contains("not granted"),
            "{plugin}: {}",
            reason(&r)
        );
    }
    assert!(
        server.seen().is_empty(),
        "no request may leave the sandbox: {:?}",
        server.seen()
    );
}
