//! `tagship lock` against the real local cluster: another deployer takes the environment's
//! lock, the registry's deployer finds it held (named, with its reason) and gives up with the
//! lock-timeout exit code; nobody releases a lock they do not hold.
//!
//! Needs the local environment: `tests/cluster/up`, then `TAGSHIP_KUBECONFIG` from its `env`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var("TAGSHIP_KUBECONFIG").unwrap_or_else(|_| {
        panic!("run tests/cluster/up and export TAGSHIP_KUBECONFIG=<state dir>/kubeconfig (see tests/README.md)")
    }))
}

/// A namespace of its own, deleted when the test ends.
struct Namespace(String);

impl Namespace {
    fn new(prefix: &str) -> Self {
        let name = format!("{prefix}-{}-{}", std::process::id(), fastrand_suffix());
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(["create", "namespace", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Namespace(name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(["delete", "namespace", &self.0, "--wait=false"])
            .output();
    }
}

fn fastrand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 100_000
}

fn config(dir: &Path, namespace: &str) -> PathBuf {
    let path = dir.join("tagship.toml");
    let text = format!(
        r#"kubeconfig = "{kubeconfig}"

[component]
name = "registry"
image = "registry.example.com/registry"
tag = "{{{{version}}}}-gitlab"

[lock]
namespace = "{namespace}"
ttl = "1m"
wait = "3s"

[[stage]]
name = "gstg"
environment = "gstg"
clusters = ["local-1"]
namespace = "{namespace}"
workloads = [{{ deployment = "gitlab-registry", containers = ["registry"] }}]
"#,
        kubeconfig = kubeconfig().display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn tagship(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagship"))
        .args(["lock"])
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("TAGSHIP_HOLDER")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn another_deployers_lock_makes_acquire_wait_name_the_holder_and_time_out() {
    let ns = Namespace::new("lock-cli");
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &ns.0);

    let out = tagship(&config, &["status", "--stage", "gstg"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("gstg: free"), "{}", text(&out));

    // The app's auto-deploy takes the lock.
    let out = tagship(
        &config,
        &[
            "acquire",
            "--environment",
            "gstg",
            "--holder",
            "rails-auto-deploy",
            "--reason",
            "deploying the app",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = tagship(&config, &["status", "--stage", "gstg", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["held"], true);
    assert_eq!(json["holder"], "rails-auto-deploy");
    assert_eq!(json["reason"], "deploying the app");
    assert!(json["expires_in_seconds"].as_u64().unwrap() <= 60);

    // The registry's deployer waits (3 s, from [lock].wait) and gives up with exit code 4.
    let started = std::time::Instant::now();
    let out = tagship(
        &config,
        &["acquire", "--stage", "gstg", "--holder", "registry-deploy"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));
    let said = text(&out);
    assert!(
        said.contains("held by `rails-auto-deploy`") && said.contains("(deploying the app)"),
        "{said}"
    );

    // Nobody releases a lock they do not hold.
    let out = tagship(
        &config,
        &["release", "--stage", "gstg", "--holder", "registry-deploy"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("not held by `registry-deploy`"),
        "{}",
        text(&out)
    );
    let out = tagship(&config, &["status", "--stage", "gstg"]);
    assert!(
        text(&out).contains("held by `rails-auto-deploy`"),
        "{}",
        text(&out)
    );

    // Released by its holder, the lock is free for the registry's deployer.
    let out = tagship(
        &config,
        &[
            "release",
            "--stage",
            "gstg",
            "--holder",
            "rails-auto-deploy",
        ],
    );
    assert!(
        text(&out).contains("released the lock of `gstg`"),
        "{}",
        text(&out)
    );
    let out = tagship(
        &config,
        &[
            "acquire",
            "--stage",
            "gstg",
            "--holder",
            "registry-deploy",
            "--wait",
            "0s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_bad_stage_or_config_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "unused");
    let out = tagship(&config, &["status", "--stage", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no stage `nope`"), "{}", text(&out));

    let out = tagship(
        &dir.path().join("missing.toml"),
        &["status", "--stage", "gstg"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("missing.toml"), "{}", text(&out));
}
