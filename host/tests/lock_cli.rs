//! `tagship lock` against the real local cluster: another deployer takes the environment's
//! lock, the registry's deployer finds it held (named, with its reason) and gives up with the
//! lock-timeout exit code; nobody releases a lock they do not hold.
//!
//! Needs the local environment: `tests/cluster/up`, then `TAGSHIP_KUBECONFIG` from its `env`.

#[path = "support/site.rs"]
mod site;

use std::path::{Path, PathBuf};

use site::{Ran, Site, StageSpec};

/// One stage `gstg` in its own namespace (no workloads: the lock needs none).
fn site() -> Site {
    Site::builder("lockcli")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .live(None)
        .create()
}

fn config(site: &Site) -> PathBuf {
    site.config()
        .without_health()
        .lock_ttl("1m")
        .lock_wait("3s")
        .write()
}

fn tagship(config: &Path, args: &[&str]) -> Ran {
    let mut cmd = site::tagship(&["lock"]);
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env_remove("TAGSHIP_HOLDER");
    site::run(&mut cmd)
}

#[test]
fn another_deployers_lock_makes_acquire_wait_name_the_holder_and_time_out() {
    let site = site();
    let config = config(&site);

    let out = tagship(&config, &["status", "--stage", "gstg"]);
    assert_eq!(out.code, 0, "{}", out.said);
    assert!(out.said.contains("gstg: free"), "{}", out.said);

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
    assert_eq!(out.code, 0, "{}", out.said);

    let out = tagship(&config, &["status", "--stage", "gstg", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["held"], true);
    assert_eq!(json["holder"], "rails-auto-deploy");
    assert_eq!(json["reason"], "deploying the app");
    assert!(json["expires_in_seconds"].as_u64().unwrap() <= 60);

    // The registry's deployer waits (3 s, from [lock].wait) and gives up with exit code 4.
    let out = tagship(
        &config,
        &["acquire", "--stage", "gstg", "--holder", "registry-deploy"],
    );
    assert_eq!(out.code, 4, "{}", out.said);
    assert!(
        out.took >= std::time::Duration::from_secs(3),
        "{}",
        out.said
    );
    let said = &out.said;
    assert!(
        said.contains("held by `rails-auto-deploy`") && said.contains("(deploying the app)"),
        "{said}"
    );

    // Nobody releases a lock they do not hold.
    let out = tagship(
        &config,
        &["release", "--stage", "gstg", "--holder", "registry-deploy"],
    );
    assert_eq!(out.code, 0, "{}", out.said);
    assert!(
        out.said.contains("not held by `registry-deploy`"),
        "{}",
        out.said
    );
    let out = tagship(&config, &["status", "--stage", "gstg"]);
    assert!(
        out.said.contains("held by `rails-auto-deploy`"),
        "{}",
        out.said
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
        out.said.contains("released the lock of `gstg`"),
        "{}",
        out.said
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
    assert_eq!(out.code, 0, "{}", out.said);
}

#[test]
fn a_bad_stage_or_config_is_a_usage_error() {
    let site = site();
    let config = config(&site);
    let out = tagship(&config, &["status", "--stage", "nope"]);
    assert_eq!(out.code, 2, "{}", out.said);
    assert!(out.said.contains("no stage `nope`"), "{}", out.said);

    let out = tagship(
        &site.dir().join("missing.toml"),
        &["status", "--stage", "gstg"],
    );
    assert_eq!(out.code, 2, "{}", out.said);
    assert!(out.said.contains("missing.toml"), "{}", out.said);
}
