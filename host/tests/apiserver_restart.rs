//! The kube-apiserver, and etcd, killed (SIGKILL) and restarted under a running deploy's rollout
//! watch: the run rides the outage out (bounded retries, the watch resumed) and completes, with
//! nothing lost.
//!
//! Destructive, so it runs only in an environment of its own, and only when asked: its tests are
//! `#[ignore]`d (a plain `cargo test` does not count them as passed), and `tests/run` runs them
//! with `--ignored` after exporting the `env` of an environment brought up with
//! `TAGSHIP_CLUSTER_DIR=/tmp/fault-cluster TAGSHIP_PORT_BASE=19400 tests/cluster/up` and setting
//! `TAGSHIP_FAULT_CLUSTER_DIR` to the same directory. Run without that environment, they fail,
//! saying what to do: they never kill the processes of a shared environment, and never pass
//! without having run.

#[path = "support/site.rs"]
mod site;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;

use site::{Background, Site, StageSpec, deploy_command, eventually, image_of};

/// The state directory of the environment this test may break, when it is the one exported.
fn own_environment() -> Option<PathBuf> {
    let fault = std::env::var("TAGSHIP_FAULT_CLUSTER_DIR").ok()?;
    let exported = std::env::var("TAGSHIP_CLUSTER_DIR").ok()?;
    (!fault.is_empty() && fault == exported).then(|| PathBuf::from(fault))
}

/// The environment `test` may break; without one of its own, the test fails saying how to run
/// it (it must not pass without having run, nor break a shared environment).
fn own_environment_for(test: &str) -> PathBuf {
    own_environment().unwrap_or_else(|| {
        panic!(
            "{test} kills a process of the environment, so it runs only in an environment of its \
             own, and none is exported: bring one up with `TAGSHIP_CLUSTER_DIR=/tmp/fault-cluster \
             TAGSHIP_PORT_BASE=19400 tests/cluster/up`, export its env file and \
             TAGSHIP_FAULT_CLUSTER_DIR=/tmp/fault-cluster, then run `cargo test -p tagship --test \
             apiserver_restart -- --ignored` (tests/run does all of that)"
        )
    })
}

/// The recorded pid of process `name` in the state directory's `pids` file.
fn pid_of(dir: &Path, name: &str) -> u32 {
    let pids = std::fs::read_to_string(dir.join("pids")).expect("read pids");
    pids.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(n, _)| *n == name)
        .and_then(|(_, pid)| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in {}/pids", dir.display()))
}

/// Whether process `pid` has exited as a whole: reaped, or a zombie whose threads have all
/// exited. A multi-threaded process's leader shows `Z` while its other threads are still
/// exiting and holding its listening sockets and file locks, so `Z` alone is too early to
/// start the same program again on the same ports and data directory.
fn fully_exited(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    zombie && threads <= 1
}

/// The last lines of process `name`'s log in the state directory.
fn log_tail(dir: &Path, name: &str) -> String {
    let log = std::fs::read_to_string(dir.join(format!("logs/{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Kills `name` with SIGKILL, waits until it has wholly exited, and starts it again with the
/// same command line (see [`start`]); waits for the API server to be ready, starting the process
/// again if it exits meanwhile, and returns how long the API was down.
fn kill_and_restart(dir: &Path, name: &str) -> Duration {
    let pid = pid_of(dir, name);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let program = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
    assert!(args[0].contains(program), "{args:?}");
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let down_since = Instant::now();
    let gone = eventually(Duration::from_secs(30), || fully_exited(pid));
    assert!(gone, "{name} (pid {pid}) still runs 30 s after SIGKILL");
    let mut child = start(dir, name, &args);
    let mut starts = 1;
    let ready = eventually(Duration::from_mins(2), || {
        if let Some(status) = child.try_wait().expect("wait for the restarted process") {
            // A supervisor would start it again; say so loudly, and give up after three.
            let tail = log_tail(dir, name);
            assert!(
                starts < 3,
                "the restarted {name} exited ({status}) {starts} times; the end of its log:\n{tail}"
            );
            eprintln!("faults: the restarted {name} exited ({status}); starting it again:\n{tail}");
            std::thread::sleep(Duration::from_secs(1));
            child = start(dir, name, &args);
            starts += 1;
        }
        site::kubectl(&["get", "--raw", "/readyz"]).status.success()
    });
    let verbose = site::kubectl(&["get", "--raw", "/readyz?verbose"]);
    assert!(
        ready,
        "the kube-apiserver was not ready 2 min after {name} restarted: {}{}\n\
         the end of {name}'s log:\n{}\nthe end of kube-apiserver-1's log:\n{}",
        String::from_utf8_lossy(&verbose.stdout),
        String::from_utf8_lossy(&verbose.stderr),
        log_tail(dir, name),
        log_tail(dir, "kube-apiserver-1"),
    );
    down_since.elapsed()
}

/// Starts `args` as process `name` of the environment: in a process group of its own, logging
/// to its log file, its pid recorded so `tests/cluster/down` stops it.
fn start(dir: &Path, name: &str, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(format!("logs/{name}.log")))
        .expect("open the log");
    #[allow(
        clippy::zombie_processes,
        reason = "the restarted process outlives this test; tests/cluster/down stops it"
    )]
    let child = Command::new(&args[0])
        .args(&args[1..])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("restart");
    let pids = std::fs::read_to_string(dir.join("pids")).expect("read pids");
    let updated: String = pids
        .lines()
        .map(|l| {
            if l.split_once(' ').is_some_and(|(n, _)| n == name) {
                format!("{name} {}\n", child.id())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.join("pids"), updated).expect("record the new pid");
    child
}

/// Deploys two stages whose rollouts take ~10 s and kills and restarts `process` (a name of
/// the `pids` file) while the canary's rollout is watched; asserts the deploy completed with
/// nothing lost.
fn deploy_through_a_restart_of(dir: &Path, process: &str) {
    // One outage at a time: each test's deploy must see only its own.
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // Given rollouts that take ~10 s (pods available 4 s after Ready, one at a time)
    let site = Site::builder("frestart")
        .stages(vec![
            StageSpec::auto("gstg-cny", "gstg"),
            StageSpec::auto("gstg", "gstg"),
        ])
        .deployment(|d| {
            d["spec"]["minReadySeconds"] = json!(4);
            d["spec"]["progressDeadlineSeconds"] = json!(120);
        })
        .create();
    let config = site
        .config()
        .without_health()
        .lock_ttl("30s")
        .rollout_timeout("120s")
        .write();

    // When the process is killed and restarted while the canary's rollout is watched
    let mut run = Background::spawn(&mut deploy_command(&config, &["--version", "v2.0.0"]));
    let mid_rollout = eventually(Duration::from_mins(1), || {
        site.image("gstg-cny") == image_of("v2.0.0") && !site.rollout_in("local-1", "gstg-cny").0
    });
    assert!(mid_rollout, "never saw the canary mid-rollout");
    assert!(run.is_running());
    let outage = kill_and_restart(dir, process);
    eprintln!("faults: {process} killed and restarted; the API was unready for {outage:?}");

    // Then the deploy completes with nothing lost
    let ran = run.finish();
    assert_eq!(ran.code, 0, "outage {outage:?}\n{}", ran.said);
    for told in ran
        .said
        .lines()
        .filter(|l| l.contains("API server of context"))
    {
        eprintln!("faults: the run said: {}", told.trim());
    }
    for stage in site.stage_names() {
        assert_eq!(site.image(&stage), image_of("v2.0.0"), "{stage}");
        assert!(site.rollout_in("local-1", &stage).0, "{stage}");
        let deployed = site
            .history(&stage)
            .iter()
            .filter(|h| h["action"] == "deployed" && h["version"] == "v2.0.0")
            .count();
        assert_eq!(deployed, 1, "{stage}\n{}", ran.said);
    }
    assert_eq!(site.lease_holder("gstg"), "", "{}", ran.said);
    if process.starts_with("kube-apiserver") {
        // A person watching the run was told, not left looking at a silent terminal.
        assert!(
            ran.said
                .contains("requests to the API server of context `local-1` are failing"),
            "{}",
            ran.said
        );
    }
}

#[test]
#[ignore = "kills kube-apiserver: needs an environment of its own (tests/run runs it with --ignored)"]
fn the_apiserver_killed_and_restarted_under_a_rollout_watch_does_not_stop_the_deploy() {
    let dir = own_environment_for("the_apiserver_killed_and_restarted_under_a_rollout_watch…");
    deploy_through_a_restart_of(&dir, "kube-apiserver-1");
}

#[test]
#[ignore = "kills etcd: needs an environment of its own (tests/run runs it with --ignored)"]
fn etcd_killed_and_restarted_under_a_rollout_watch_does_not_stop_the_deploy() {
    let dir = own_environment_for("etcd_killed_and_restarted_under_a_rollout_watch…");
    deploy_through_a_restart_of(&dir, "etcd");
}
