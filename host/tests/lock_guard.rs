//! The deploy lock on every path that changes a cluster, end to end: a lock that cannot be taken
//! (a missing namespace, forbidden Leases, an outage) ends within the wait with the fix; two runs
//! of one person are two holders; the post-deployment migrations of a stage already deployed wait
//! for the lock; an on-demand rollback keeps its lock renewed; `tagship lock run` holds the lock
//! around a command. The real binary against the real local kube-apiserver (through the fault
//! proxy where a fault is needed); `kubectl` is the witness.
//!
//! Needs the local environment (`tests/cluster/up --clusters 2`, variables of its `env` file).

#[path = "support/site.rs"]
mod site;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tagship_tests::fault_proxy::{Fault, FaultProxy, Match, Rule};

use site::{
    Background, HOLDER, Site, StageSpec, command, deploy, deploy_command, eventually, image_of,
    tagship,
};

/// A run that must end by itself within `limit`; killed (failing the test) otherwise.
fn within(limit: Duration, cmd: &mut Command) -> site::Ran {
    let mut run = Background::spawn(cmd);
    let deadline = Instant::now() + limit;
    while run.is_running() {
        if Instant::now() > deadline {
            let said = run.kill().said;
            panic!("still running after {limit:?}:\n{said}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run.finish()
}

fn one_stage(test: &str) -> Site {
    Site::builder(test)
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create()
}

/// The lock's JSON status (`tagship lock status --output json`).
fn lock_status(config: &std::path::Path) -> Value {
    let ran = command(
        config,
        &["lock", "status"],
        &["--stage", "gstg", "--output", "json"],
    );
    assert_eq!(ran.code, 0, "{}", ran.said);
    serde_json::from_str(&ran.stdout).expect("lock status JSON")
}

#[test]
fn a_lock_namespace_that_does_not_exist_blocks_at_once_saying_how_to_fix_it() {
    // Given `[lock] namespace` naming a namespace that does not exist
    let site = one_stage("lkns");
    let config = site.config().lock_wait("10m").write();
    let text = std::fs::read_to_string(&config).expect("read");
    let missing = format!("{}-nope", site.ns("gstg"));
    std::fs::write(
        &config,
        // The first `namespace` is [lock]'s; the stage's comes later.
        text.replacen(
            &format!("namespace = \"{}\"", site.lock_namespace()),
            &format!("namespace = \"{missing}\""),
            1,
        ),
    )
    .expect("write");

    // When a deploy runs (it would wait ten minutes for a lock someone held)
    let ran = within(
        Duration::from_mins(1),
        &mut deploy_command(&config, &["--version", "v2.0.0"]),
    );

    // Then it stops at once, blocked with nothing changed, naming the namespace and the fix
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(
        ran.said
            .contains(&format!("the lock's namespace `{missing}` does not exist"))
            && ran.said.contains(&format!(
                "kubectl --context local-1 create namespace {missing}"
            )),
        "{}",
        ran.said
    );
    assert!(
        ran.said.lines().count() < 20,
        "no retry loop:\n{}",
        ran.said
    );
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
}

/// A site whose configuration reaches `local-1` through a fault proxy injecting `fault` into
/// every Lease request.
fn leases_answering(test: &str, fault: Fault) -> (Site, FaultProxy, PathBuf) {
    let site = one_stage(test);
    let source = PathBuf::from(site::env("TAGSHIP_KUBECONFIG"));
    let proxy = FaultProxy::start(&source, "local-1").expect("start the fault proxy");
    let kubeconfig = site.dir().join("kubeconfig-through-proxy");
    proxy
        .kubeconfig_for(&source, "local-1", &kubeconfig)
        .expect("write the proxied kubeconfig");
    proxy.inject(Rule::new(Match::any(&["/leases"]), fault, usize::MAX));
    (site, proxy, kubeconfig)
}

#[test]
fn leases_the_credentials_may_not_use_block_at_once_naming_the_verbs_to_grant() {
    // Given an API server that answers 403 Forbidden to every Lease request (missing RBAC)
    let (site, _proxy, kubeconfig) = leases_answering("lk403", Fault::status(403));
    let config = site
        .config()
        .kubeconfig(&kubeconfig)
        .lock_wait("10m")
        .write();

    // When a deploy runs
    let ran = within(
        Duration::from_mins(1),
        &mut deploy_command(&config, &["--version", "v2.0.0"]),
    );

    // Then it is blocked at once, naming what to grant
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(
        ran.said
            .contains("grant the verbs get, create and update on `leases`"),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
}

#[test]
fn a_lock_that_cannot_be_read_is_tried_for_the_wait_then_blocks() {
    // Given an API server overloaded for Leases (503 every time) and a wait of 5 s
    let (site, proxy, kubeconfig) = leases_answering("lk503", Fault::status(503));
    let config = site
        .config()
        .kubeconfig(&kubeconfig)
        .lock_wait("5s")
        .write();

    // When a deploy runs
    let started = Instant::now();
    let ran = within(
        Duration::from_secs(90),
        &mut deploy_command(&config, &["--version", "v2.0.0"]),
    );

    // Then it kept trying for the wait (one request's own retries included), not minutes, and
    // not one try every 100 ms, then stopped blocked with the cause
    assert_eq!(ran.code, 3, "{}", ran.said);
    assert!(ran.said.contains("503"), "{}", ran.said);
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
    let requests = proxy.seen_matching(&Match::any(&["/leases"])).len();
    assert!(requests < 40, "{requests} Lease requests for a 5 s wait");
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
}

#[test]
fn two_runs_of_one_person_are_two_holders() {
    // Given a slow rollout (each new pod counts as available only after 15 s)
    let site = Site::builder("lktwo")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .deployment(|d| {
            d["spec"]["minReadySeconds"] = json!(15);
            d["spec"]["progressDeadlineSeconds"] = json!(120);
        })
        .create();
    let config = site.config().lock_wait("3s").rollout_timeout("2m").write();

    // When one terminal deploys and, while it works, a second terminal of the same person does
    let first = Background::spawn(&mut deploy_command(&config, &["--version", "v2.0.0"]));
    assert!(
        eventually(Duration::from_secs(30), || site.lease_holder_who("gstg")
            == HOLDER),
        "the first run never took the lock"
    );
    let second = deploy(&config, &["--version", "v2.0.0"]);

    // Then the second waits for the first (it does not hold the lock too) and gives up, naming
    // the first run; the first finishes, and its lock was never released by the second
    assert_eq!(second.code, 4, "{}", second.said);
    assert!(
        second
            .said
            .contains(&format!("held by `{HOLDER}` (run `run-")),
        "{}",
        second.said
    );
    let first = first.finish();
    assert_eq!(first.code, 0, "{}", first.said);
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    assert_eq!(site.lease_holder("gstg"), "");
}

#[test]
fn post_migrations_of_a_stage_already_deployed_wait_for_the_lock() {
    // Given a stage deployed whose post-deployment migrations failed (the stand-in fails a Job
    // pod whose command says `fail`)
    let site = one_stage("lkpost");
    let failing = site
        .config()
        .post_migration(&["registry", "database", "migrate", "up", "--fail"], None)
        .write_as("failing.toml");
    let ran = deploy(&failing, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains("post-deployment migrations failed"),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg"), image_of("v2.0.0"), "it keeps serving");

    // When someone else holds the lock and the deploy is run again to finish the migrations
    let config = site
        .config()
        .lock_wait("3s")
        .post_migration(&["registry", "database", "migrate", "up"], None)
        .write();
    let taken = command(
        &config,
        &["lock", "acquire"],
        &["--stage", "gstg", "--holder", "someone", "--ttl", "5m"],
    );
    assert_eq!(taken.code, 0, "{}", taken.said);
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then it waits for the lock (the migrations change the database) and gives up naming the
    // holder, having run nothing
    assert_eq!(ran.code, 4, "{}", ran.said);
    assert!(
        !ran.said.contains("running post-deployment migrations"),
        "{}",
        ran.said
    );

    // When the lock is free, Then the migrations run under it and set the watermark
    let released = command(
        &config,
        &["lock", "release"],
        &["--stage", "gstg", "--holder", "someone"],
    );
    assert_eq!(released.code, 0, "{}", released.said);
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.said.contains("holding the lock of `gstg`"),
        "{}",
        ran.said
    );
    assert!(
        ran.said
            .contains("post-deployment migrations of v2.0.0 done"),
        "{}",
        ran.said
    );
}

#[test]
fn an_on_demand_rollback_keeps_its_lock_renewed_through_a_long_rollout() {
    // Given a stage at v2.0.0 over v1.0.0, a lock that lives 15 s unless renewed, and rollouts
    // that take over 20 s (each new pod available only after 20 s)
    let site = Site::builder("lkroll")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .deployment(|d| {
            d["spec"]["minReadySeconds"] = json!(20);
            d["spec"]["progressDeadlineSeconds"] = json!(120);
        })
        .create();
    let config = site.config().lock_ttl("15s").rollout_timeout("3m").write();
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);

    // When it is rolled back
    let mut rollback = Background::spawn(
        tagship(&["rollback", "--config", config.to_str().expect("utf-8")])
            .args(["--stage", "gstg"]),
    );
    // Then after more than the lock's time to live, the rollback still holds it (renewed)
    std::thread::sleep(Duration::from_secs(20));
    assert!(rollback.is_running(), "the rollback ended early");
    let status = lock_status(&config);
    assert_eq!(status["held"], true, "{status}");
    assert_eq!(status["holder_who"], HOLDER, "{status}");
    let rolled = rollback.finish();
    assert_eq!(rolled.code, 0, "{}", rolled.said);
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
    assert_eq!(lock_status(&config)["held"], false);
}

#[test]
fn lock_run_holds_the_lock_around_a_command_and_exits_with_its_code() {
    let site = one_stage("lkrun");
    let config = site.config().lock_ttl("15s").write();
    let config_arg = config.to_str().expect("utf-8");
    let lock_run = |extra: &[&str], command: &str| {
        let mut cmd = tagship(&["lock", "run", "--config", config_arg, "--stage", "gstg"]);
        cmd.args(extra).args(["--", "sh", "-c", command]);
        cmd
    };

    // When a command runs under the lock for longer than the lock's time to live
    let run = Background::spawn(&mut lock_run(
        &["--holder", "rails-auto-deploy"],
        "sleep 20; exit 7",
    ));
    std::thread::sleep(Duration::from_secs(18));
    // Then the lock is held all along (renewed) by the holder and this run
    let status = lock_status(&config);
    assert_eq!(status["held"], true, "{status}");
    assert_eq!(status["holder_who"], "rails-auto-deploy", "{status}");
    assert!(
        status["holder_run"]
            .as_str()
            .is_some_and(|r| r.starts_with("run-")),
        "{status}"
    );
    // And the command's exit code is tagship's, and the lock is released
    let ran = run.finish();
    assert_eq!(ran.code, 7, "{}", ran.said);
    assert_eq!(lock_status(&config)["held"], false);

    // When tagship is sent SIGTERM (a cancelled CI job) while the command runs
    let marker = site.dir().join("term");
    let script = format!(
        "trap 'touch {}; exit 42' TERM; while true; do sleep 0.1; done",
        marker.display()
    );
    let run = Background::spawn(&mut lock_run(&[], &script));
    assert!(
        eventually(Duration::from_secs(20), || lock_status(&config)["held"]
            == true),
        "the lock was never taken"
    );
    std::thread::sleep(Duration::from_millis(500));
    let pid = run.pid();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    // Then the command got it, its code is tagship's, and the lock is released
    let started = Instant::now();
    let ran = run.finish();
    assert_eq!(ran.code, 42, "{}", ran.said);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(marker.exists(), "the command got SIGTERM:\n{}", ran.said);
    assert_eq!(lock_status(&config)["held"], false);

    // When someone else holds the lock for longer than the wait
    let taken = command(
        &config,
        &["lock", "acquire"],
        &["--stage", "gstg", "--holder", "someone", "--ttl", "5m"],
    );
    assert_eq!(taken.code, 0, "{}", taken.said);
    let ran_marker = site.dir().join("ran");
    let ran = site::run(&mut lock_run(
        &["--wait", "2s"],
        &format!("touch {}", ran_marker.display()),
    ));
    // Then the command never runs and tagship exits 4, naming the holder
    assert_eq!(ran.code, 4, "{}", ran.said);
    assert!(ran.said.contains("`someone`"), "{}", ran.said);
    assert!(!ran_marker.exists(), "the command ran without the lock");
}
