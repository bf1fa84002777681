//! `tagship check-compat` end to end: the real binary, the built-in `rails-compat` plugin, the
//! registry versions live in the local cluster, and a loopback HTTP server standing in for the
//! app repository's minimum-version file.
//!
//! Needs the local environment: `tests/cluster/up`, then the variables of its `env` file.

#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/site.rs"]
mod site;

use serde_json::Value;

use http_server::{Reply, TestServer};
use site::{IMAGE, Site, StageSpec, command, deploy, image_of, set_component_tag};

/// The app version → the minimum registry version it needs, as the app's repository declares.
fn minimum_for(path: &str) -> Reply {
    match path {
        "/min/v17.5.0" => Reply::text(200, "v1.0.0\n"),
        "/min/v18.0.0" => Reply::text(200, "v2.0.0\n"),
        _ => Reply::text(404, "not found"),
    }
}

fn compat_plugin(authority: &str) -> String {
    format!(
        "[plugins.compat]\nsource = \"builtin:rails-compat\"\nallow_hosts = [\"{authority}\"]\nconfig = {{ min_version_url = \"http://{authority}/min/{{{{app_version}}}}\" }}\n"
    )
}

#[test]
fn check_compat_reads_the_live_version_per_stage_and_fails_closed() {
    // Given gstg-cny serving v2.0.0, gprd v1.0.0, both with the compat check; gstg without
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let source = runtime.block_on(TestServer::start(|seen| minimum_for(&seen.path)));
    let site = Site::new("compat");
    let config = site
        .config()
        .toml(&compat_plugin(&source.authority()))
        .stage("gstg-cny", "pre_checks = [\"compat\"]")
        .stage("gprd", "pre_checks = [\"compat\"]")
        .write();
    // (the deploy's own compat pre-check gets the app version from --app-version)
    let ran = deploy(
        &config,
        &[
            "--version",
            "v2.0.0",
            "--until",
            "gstg-cny",
            "--app-version",
            "v17.5.0",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v2.0.0"));
    let check = |args: &[&str]| command(&config, &["check-compat"], args);

    // When the app needs v1.0.0, Then every stage is compatible
    let ran = check(&["--app-version", "v17.5.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.stdout
            .contains("gstg-cny: compatible (registry v2.0.0, app v17.5.0)")
            && ran
                .stdout
                .contains("gprd: compatible (registry v1.0.0, app v17.5.0)"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("gstg:"), "gstg has no compat check");

    // When the app needs v2.0.0, Then gprd (still v1.0.0) is incompatible, with the reason
    let ran = check(&["--app-version", "v18.0.0", "--output", "json"]);
    assert_eq!(ran.code, 1, "{}", ran.said);
    let report: Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(report["verdict"], "incompatible");
    assert_eq!(report["stages"][0]["stage"], "gstg-cny");
    assert_eq!(report["stages"][0]["verdict"], "compatible");
    assert_eq!(report["stages"][1]["stage"], "gprd");
    assert_eq!(report["stages"][1]["verdict"], "incompatible");
    assert_eq!(report["stages"][1]["registry_versions"][0], "v1.0.0");
    let reason = report["stages"][1]["reasons"][0].as_str().unwrap_or("");
    assert!(
        reason.contains("v1.0.0") && reason.contains("v2.0.0"),
        "the reason names both versions: {reason}"
    );

    // When only gstg-cny is asked about, Then it alone decides
    let ran = check(&["--app-version", "v18.0.0", "--stage", "gstg-cny"]);
    assert_eq!(ran.code, 0, "{}", ran.said);

    // When the app's minimum cannot be found, Then it is undecided: fail closed (exit 3)
    let ran = check(&["--app-version", "v19.0.0"]);
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(
        ran.stdout.contains("undecided") && ran.stdout.contains("404"),
        "{}",
        ran.stdout
    );
    // unless the caller explicitly accepts that
    let ran = check(&["--app-version", "v19.0.0", "--allow-undecided"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(ran.said.contains("warning"), "{}", ran.said);

    // And a stage without a compat check, or a bad version, is a usage error
    let ran = check(&["--app-version", "v17.5.0", "--stage", "gstg"]);
    assert_eq!(ran.code, 2, "{}", ran.said);
    assert!(ran.said.contains("no compat plugin"), "{}", ran.said);
    let ran = check(&["--app-version", "seventeen"]);
    assert_eq!(ran.code, 2, "{}", ran.said);
    assert!(ran.said.contains("--app-version"), "{}", ran.said);
    drop(source);
}

#[test]
fn an_unreachable_version_source_fails_closed_with_a_clear_message() {
    // Given a version source that does not answer (a port nobody listens on)
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let site = Site::new("compatdown");
    let config = site
        .config()
        .toml(&compat_plugin(&format!("127.0.0.1:{port}")))
        .stage("gstg-cny", "pre_checks = [\"compat\"]")
        .write();

    // When the check runs, Then it is undecided, exit 3, and says it could not reach the source
    let ran = command(&config, &["check-compat"], &["--app-version", "v17.5.0"]);
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(ran.stdout.contains("gstg-cny: undecided"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains(&format!("127.0.0.1:{port}")),
        "the message names the source: {}",
        ran.stdout
    );

    // And a deploy with the same pre-check is blocked with nothing changed
    let before = site.resource_version("gstg-cny");
    let ran = deploy(
        &config,
        &["--version", "v2.0.0", "--app-version", "v17.5.0"],
    );
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert_eq!(site.resource_version("gstg-cny"), before);
}

#[test]
fn a_cluster_whose_version_cannot_be_read_leaves_the_stage_undecided() {
    // Given a stage over two clusters: local-1 serves v1.0.0, local-2 an image whose tag is not
    // a version (`latest`), and an app that needs at least v1.0.0
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let source = runtime.block_on(TestServer::start(|seen| minimum_for(&seen.path)));
    let site = Site::builder("compatunread")
        .stages(vec![
            StageSpec::auto("gstg-cny", "gstg").in_clusters(&["local-1", "local-2"]),
        ])
        .deployment_in(|context, d| {
            if context == "local-2" {
                set_component_tag(d, "latest");
            }
        })
        .create();
    let config = site
        .config()
        .toml(&compat_plugin(&source.authority()))
        .stage("gstg-cny", "pre_checks = [\"compat\"]")
        .write();

    // When the compatibility with that app is checked
    let ran = command(&config, &["check-compat"], &["--app-version", "v17.5.0"]);

    // Then it is undecided (exit 3), naming the workload and the cluster it could not read,
    // not "compatible" for the cluster it could read
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(ran.stdout.contains("gstg-cny: undecided"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains(
            "cannot read the registry version of `gitlab-registry/registry` in cluster `local-2`"
        ) && ran.stdout.contains(&format!("`{IMAGE}:latest`")),
        "{}",
        ran.stdout
    );
    drop(source);
}

#[test]
fn the_app_version_may_be_a_commit_or_an_auto_deploy_version_read_at_the_app_s_commit() {
    // Given a version source keyed by the app's commit (`{{app_ref}}`), as the app repository's
    // raw file at a ref is
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let source = runtime.block_on(TestServer::start(|seen| match seen.path.as_str() {
        "/raw/abc123def45/GITLAB_CONTAINER_REGISTRY_VERSION"
        | "/raw/6ad5ca9a8b51f3d9b1fe1d0a3e1f4e3b4a5c6d7e/GITLAB_CONTAINER_REGISTRY_VERSION" => {
            Reply::text(200, "v1.0.0\n")
        }
        _ => Reply::text(404, "not found"),
    }));
    let site = Site::builder("compref")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create();
    let authority = source.authority();
    let config = site
        .config()
        .toml(&format!(
            "[plugins.compat]\nsource = \"builtin:rails-compat\"\nallow_hosts = [\"{authority}\"]\nconfig = {{ min_version_url = \"http://{authority}/raw/{{{{app_ref}}}}/GITLAB_CONTAINER_REGISTRY_VERSION\" }}\n"
        ))
        .stage("gstg", "pre_checks = [\"compat\"]")
        .write();
    let check = |version: &str| command(&config, &["check-compat"], &["--app-version", version]);

    // When the app pipeline passes its commit SHA, or its GitLab auto-deploy version
    for version in [
        "6ad5ca9a8b51f3d9b1fe1d0a3e1f4e3b4a5c6d7e",
        "17.5.202411201400-abc123def45.1a2b3c4d5e6",
    ] {
        let ran = check(version);
        // Then the minimum is read at the app's commit, and the registry is compatible
        assert_eq!(ran.code, 0, "{version}: {}", ran.said);
    }
    // And what is neither is a usage error naming the forms it takes
    let ran = check("main");
    assert_eq!(ran.code, 2, "{}", ran.said);
    assert!(ran.said.contains("nor a git commit SHA"), "{}", ran.said);
}
