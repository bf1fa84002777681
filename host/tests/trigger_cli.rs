//! `tagship trigger` against a loopback HTTP server standing in for GitLab's pipeline trigger
//! API: what the request carries, 401 and 404, a retried 502, a missing token. No cluster.

#[path = "support/http_server.rs"]
mod http_server;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_server::{Reply, TestServer};

const TOKEN: &str = "glptt-0123456789abcdef";

fn trigger(api: &str, extra: &[&str], token: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagship"));
    cmd.args([
        "trigger",
        "--version",
        "v3.1.0",
        "--project",
        "gitlab-org/deploy/registry",
        "--ref",
        "main",
        "--gitlab-url",
    ])
    .arg(api)
    .args(extra)
    .env_remove("TAGSHIP_TRIGGER_TOKEN")
    .env_remove("TAGSHIP_VERSION")
    .env_remove("CI_API_V4_URL")
    .env(
        "CI_PIPELINE_URL",
        "https://gitlab.example.com/registry/-/pipelines/99",
    );
    if let Some(token) = token {
        cmd.env("TAGSHIP_TRIGGER_TOKEN", token);
    }
    cmd.output().expect("run tagship")
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn created() -> Reply {
    Reply::json(
        201,
        r#"{"id": 4242, "status": "created", "web_url": "https://gitlab.example.com/gitlab-org/deploy/registry/-/pipelines/4242"}"#,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_starts_the_pipeline_with_the_token_and_the_variables() {
    let gitlab = TestServer::start(|_| created()).await;
    let api = format!("{}/api/v4", gitlab.url());
    let out = tokio::task::spawn_blocking(move || trigger(&api, &[], Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://gitlab.example.com/gitlab-org/deploy/registry/-/pipelines/4242",
        "stdout is the new pipeline's URL"
    );
    assert!(!said(&out).contains(TOKEN), "the token is never printed");

    let seen = gitlab.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].path,
        "/api/v4/projects/gitlab-org%2Fdeploy%2Fregistry/trigger/pipeline"
    );
    let fields = form(&seen[0].body);
    assert_eq!(
        fields["token"], TOKEN,
        "the token goes in the form, not the URL"
    );
    assert_eq!(fields["ref"], "main");
    assert_eq!(fields["variables[TAGSHIP_VERSION]"], "v3.1.0");
    assert_eq!(
        fields["variables[TAGSHIP_UPSTREAM_PIPELINE_URL]"],
        "https://gitlab.example.com/registry/-/pipelines/99"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_or_unknown_project_is_a_clear_usage_error() {
    for (status, words) in [
        (401, ["401", "trigger token", "Pipeline trigger tokens"]),
        (
            404,
            [
                "404",
                "gitlab-org/deploy/registry",
                "numeric id or full path",
            ],
        ),
    ] {
        let gitlab = TestServer::start(move |_| {
            Reply::json(status, r#"{"message": "nope glptt-0123456789abcdef"}"#)
        })
        .await;
        let api = format!("{}/api/v4", gitlab.url());
        let out = tokio::task::spawn_blocking(move || trigger(&api, &[], Some(TOKEN)))
            .await
            .unwrap();
        let text = said(&out);
        assert_eq!(out.status.code(), Some(2), "{status}: {text}");
        for word in words {
            assert!(
                text.contains(word),
                "{status}: `{word}` missing from: {text}"
            );
        }
        assert!(!text.contains(TOKEN), "the token is never printed: {text}");
        assert_eq!(gitlab.seen().len(), 1, "{status} is not retried");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_502_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let gitlab = TestServer::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::text(502, "bad gateway")
        } else {
            created()
        }
    })
    .await;
    let api = format!("{}/api/v4", gitlab.url());
    let out = tokio::task::spawn_blocking(move || trigger(&api, &[], Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(gitlab.seen().len(), 2, "one 502, then the retry");
    assert_eq!(
        form(&gitlab.seen()[1].body)["variables[TAGSHIP_VERSION]"],
        "v3.1.0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_or_with_a_bad_variable_nothing_is_sent() {
    let gitlab = TestServer::start(|_| created()).await;
    let api = format!("{}/api/v4", gitlab.url());
    let api2 = api.clone();
    let out = tokio::task::spawn_blocking(move || trigger(&api, &[], None))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(
        said(&out).contains("TAGSHIP_TRIGGER_TOKEN"),
        "{}",
        said(&out)
    );
    let out = tokio::task::spawn_blocking(move || {
        trigger(&api2, &["--variable", "not a pair"], Some(TOKEN))
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(said(&out).contains("KEY=VALUE"), "{}", said(&out));
    assert!(gitlab.seen().is_empty(), "nothing reached GitLab");
}

#[test]
fn a_version_with_build_metadata_is_refused_naming_where_it_came_from_and_nothing_is_sent() {
    // Given GitLab that would start a pipeline
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let gitlab = runtime.block_on(TestServer::start(|_| created()));
    let api = format!("http://{}/api/v4", gitlab.authority());
    let cases = [
        (
            "TAGSHIP_VERSION",
            "TAGSHIP_VERSION: `v2.0.1+build.7` cannot become an image tag",
            "hint: build metadata cannot be part of an image tag: set `TAGSHIP_VERSION=v2.0.1`",
        ),
        (
            "CI_COMMIT_TAG",
            "CI_COMMIT_TAG: `v2.0.1+build.7` cannot become an image tag",
            "hint: build metadata cannot be part of an image tag: pass `--version v2.0.1` (the Git tag `v2.0.1+build.7` cannot name an image)",
        ),
    ];
    for (variable, error, hint) in cases {
        // When the version comes from the variable (no --version)
        let out = Command::new(env!("CARGO_BIN_EXE_tagship"))
            .args([
                "trigger",
                "--project",
                "p",
                "--ref",
                "main",
                "--gitlab-url",
                &api,
            ])
            .env_remove("TAGSHIP_VERSION")
            .env_remove("CI_COMMIT_TAG")
            .env(variable, "v2.0.1+build.7")
            .env("TAGSHIP_TRIGGER_TOKEN", TOKEN)
            .output()
            .expect("run tagship");
        // Then it is a usage error naming the variable and the fix
        assert_eq!(out.status.code(), Some(2), "{}", said(&out));
        assert!(said(&out).contains(error), "{}", said(&out));
        assert!(said(&out).contains(hint), "{}", said(&out));
    }
    // And no pipeline was asked for
    assert!(gitlab.seen().is_empty());
}
