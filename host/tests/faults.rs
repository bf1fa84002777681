//! `tagship deploy` under faults between it and the kube-apiserver, injected by the test crate's
//! fault proxy (`tagship_tests::fault_proxy`: HTTP 429/500/503 answered by the proxy, dropped
//! connections, responses lost after the apiserver acted, stalls, watch streams cut mid-way), in
//! each phase of a deploy: lock, migration wait, apply, rollout watch, bake, rollback, history
//! write. Also a run killed with SIGKILL whose Lease another holder takes over at expiry, and the
//! time bounds: an apiserver that never answers is reported within the time tagship announces,
//! a SIGTERM while it hangs ends the run within seconds, and a rollout that stays quiet for
//! minutes is waited for without a warning.
//!
//! Each test counts the faults it injected (asserting they really happened) and checks with
//! `kubectl` (straight to the apiserver, not through the proxy) that nothing was lost: the
//! release live and rolled out (or the previous one, where a rollback was due), one history
//! record per stage change, the sidecar and replicas untouched, the lock free.
//!
//! Needs the local environment (`tests/cluster/up --clusters 2`, variables of its `env` file).

#[path = "support/site.rs"]
mod site;

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tagship_tests::fault_proxy::{Fault, FaultProxy, Match, Rule, RuleId};

use site::{Background, Site, StageSpec, deploy, deploy_command, eventually, image_of};

/// A site whose `tagship.toml` reaches `local-1` through a fault proxy.
struct Faulty {
    site: Site,
    proxy: FaultProxy,
    kubeconfig: PathBuf,
}

impl Faulty {
    /// Stages `gstg-cny` and `gstg` (environment `gstg`), Deployments edited by `edit`.
    fn new(test: &str, edit: impl Fn(&mut Value) + 'static) -> Self {
        Self::with_stages(
            test,
            vec![
                StageSpec::auto("gstg-cny", "gstg"),
                StageSpec::auto("gstg", "gstg"),
            ],
            edit,
        )
    }

    /// `stages`, Deployments edited by `edit`.
    fn with_stages(
        test: &str,
        stages: Vec<StageSpec>,
        edit: impl Fn(&mut Value) + 'static,
    ) -> Self {
        let site = Site::builder(test).stages(stages).deployment(edit).create();
        let source = PathBuf::from(site::env("TAGSHIP_KUBECONFIG"));
        let proxy = FaultProxy::start(&source, "local-1").expect("start the fault proxy");
        let kubeconfig = site.dir().join("kubeconfig-through-proxy");
        proxy
            .kubeconfig_for(&source, "local-1", &kubeconfig)
            .expect("write the proxied kubeconfig");
        Faulty {
            site,
            proxy,
            kubeconfig,
        }
    }

    fn config(&self) -> site::ConfigBuilder<'_> {
        self.site
            .config()
            .kubeconfig(&self.kubeconfig)
            .without_health()
    }

    /// Arms `fault` `times` times for requests `matching`; the id to count them.
    fn inject(&self, matching: Match, fault: Fault, times: usize) -> RuleId {
        self.proxy.inject(Rule::new(matching, fault, times))
    }

    fn ns(&self, stage: &str) -> String {
        self.site.ns(stage)
    }
}

impl Drop for Faulty {
    /// Says what was injected, for RELIABILITY.md's figures (`--nocapture` shows it).
    fn drop(&mut self) {
        eprintln!(
            "faults: {}: injected {:?} into {} requests",
            std::thread::current().name().unwrap_or("?"),
            self.proxy.injected_by_kind(),
            self.proxy.seen().len()
        );
    }
}

/// Asserts every stage serves `version`, rolled out, with one `deployed` record for it; the
/// sidecar and replicas untouched; the lock free.
fn nothing_lost(f: &Faulty, version: &str, said: &str) {
    for stage in f.site.stage_names() {
        assert_eq!(f.site.image(&stage), image_of(version), "{stage}\n{said}");
        let (complete, words) = f.site.rollout_in("local-1", &stage);
        assert!(complete, "{stage}: {words}\n{said}");
        let d = f.site.deployment_in("local-1", &stage);
        assert_eq!(d["spec"]["replicas"], json!(2), "{stage}: replicas kept");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][1]["image"],
            json!("busybox:1.36"),
            "{stage}: the sidecar is not tagship's"
        );
        let deployed = f
            .site
            .history(&stage)
            .into_iter()
            .filter(|h| h["action"] == "deployed" && h["version"] == version)
            .count();
        assert_eq!(deployed, 1, "{stage}: one record per change\n{said}");
    }
    assert_eq!(f.site.lease_holder("gstg"), "", "the lock is released");
}

fn deployments(ns: &str) -> Match {
    Match::any(&["/deployments", ns])
}

/// Every request, held back ten minutes: an apiserver that accepts connections and never
/// answers.
fn hang_everything(f: &Faulty) -> RuleId {
    f.inject(
        Match::any(&["/"]),
        Fault::Stall(Duration::from_mins(10)),
        usize::MAX,
    )
}

/// Changes `stage`'s Deployment in place with `kubectl patch` (a merge patch of its spec): for
/// fields a site cannot be created with (a long `minReadySeconds` would make the creation wait
/// for it). Its pods younger than a new `minReadySeconds` count as unavailable until they are
/// that old.
fn patch_spec(f: &Faulty, stage: &str, spec: &Value) {
    let patch = json!({ "spec": spec }).to_string();
    site::kubectl_ok(&[
        "patch",
        "deployment",
        site::DEPLOYMENT,
        "-n",
        &f.ns(stage),
        "--type",
        "merge",
        "-p",
        &patch,
    ]);
}

/// A run of the binary in the background whose output lines are timed as they come, to compare
/// what it announced with when it acted. Killed if still running when dropped.
struct Timed {
    child: Child,
    started: Instant,
    lines: Arc<Mutex<Vec<(Duration, String)>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Timed {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd.spawn().expect("start tagship");
        let started = Instant::now();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let outputs: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for output in outputs {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(output).lines() {
                    let Ok(line) = line else { return };
                    lines
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((started.elapsed(), line));
                }
            }));
        }
        Timed {
            child,
            started,
            lines,
            readers,
        }
    }

    /// Waits up to `limit` (from its start) for its end: its exit status and when it came, or
    /// `None` (and the run is killed) when it did not end in time.
    fn wait(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        loop {
            if let Some(status) = self.child.try_wait().expect("poll tagship") {
                let ended = self.started.elapsed();
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some((status, ended));
            }
            if self.started.elapsed() >= limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` (`TERM`, `INT`) to it; when it was sent.
    fn signal(&self, signal: &str) -> Duration {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
        self.started.elapsed()
    }

    /// The first line containing `needle`, with when it came.
    fn line(&self, needle: &str) -> Option<(Duration, String)> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(_, line)| line.contains(needle))
            .cloned()
    }

    /// Everything it said so far, each line with its time.
    fn said(&self) -> String {
        let mut said = String::new();
        for (at, line) in self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(said, "[{:6.1} s] {line}", at.as_secs_f32());
        }
        said
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The WARN that an outage began: when it came and the seconds it announced ("retrying for about
/// N s").
fn announced(run: &Timed) -> Option<(Duration, u64)> {
    let (at, line) = run.line("retrying for about ")?;
    let seconds = line
        .split("retrying for about ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((at, seconds))
}

#[test]
fn faults_on_the_lock_are_retried_and_the_deploy_completes() {
    // Given the Lease requests failing: 503s, a 429 with Retry-After, a dropped connection, and
    // a created Lease whose answer is lost
    let f = Faulty::new("flock", |_| {});
    let leases = Match::any(&["/leases"]);
    let counted = [
        f.inject(Match::new("POST", &["/leases"]), Fault::LoseResponse, 1),
        f.inject(leases.clone(), Fault::status(503), 3),
        f.inject(leases.clone(), Fault::throttle(1), 1),
        f.inject(leases.clone(), Fault::Drop, 2),
        f.inject(leases, Fault::status(500), 2),
    ];
    // (ridden out within the lock's wait: a lock still unreadable after it blocks the deploy)
    let config = f.config().lock_wait("2m").write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then every fault happened and the deploy completed with nothing lost
    for rule in counted {
        assert!(
            f.proxy.injected(rule) > 0,
            "{:?}\n{}",
            f.proxy.seen(),
            ran.said
        );
    }
    assert_eq!(ran.code, 0, "{}", ran.said);
    nothing_lost(&f, "v2.0.0", &ran.said);
}

#[test]
fn a_lock_request_the_apiserver_never_answers_times_out_and_is_retried() {
    // Given the first Lease read held back for two minutes (an apiserver that accepted the
    // connection and hangs)
    let f = Faulty::new("fstall", |_| {});
    let stalled = f.inject(
        Match::new("GET", &["/leases/"]),
        Fault::Stall(Duration::from_mins(2)),
        1,
    );
    let config = f.config().write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then the request timed out (10 s, the read timeout), was retried, and the deploy completed
    assert_eq!(f.proxy.injected(stalled), 1, "{:?}", f.proxy.seen());
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.took < Duration::from_secs(75),
        "waited {:?} for a hung request\n{}",
        ran.took,
        ran.said
    );
    nothing_lost(&f, "v2.0.0", &ran.said);
}

#[test]
fn faults_while_running_and_waiting_for_the_migration_job_are_retried() {
    // Given the migration Job's creation failing once (500) and once answered but lost, its
    // reads dropped and its watch cut mid-way
    let f = Faulty::new("fmig", |_| {});
    let ns = f.ns("gstg-cny");
    let jobs = Match::any(&["/jobs", &ns]);
    let counted = [
        f.inject(Match::new("POST", &["/jobs", &ns]), Fault::status(500), 1),
        f.inject(Match::new("POST", &["/jobs", &ns]), Fault::LoseResponse, 1),
        f.inject(
            jobs.clone().watching(),
            Fault::CutStream { after_bytes: 1 },
            2,
        ),
        f.inject(jobs.not_watching(), Fault::Drop, 1),
    ];
    let config = f
        .config()
        // running 2 s, so tagship's first read finds it running and watches it, however
        // fast the environment makes pods ready
        .pre_migration(&["registry", "database", "migrate", "up", "runs-for-ms=2000"])
        .write();

    // (every state of every Job in the namespace, as kubectl sees them, the independent witness:
    // tagship deletes a finished Job once it has read its result)
    let mut witness = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            &site::env("TAGSHIP_KUBECONFIG"),
            "get",
            "jobs",
            "-n",
            &ns,
        ])
        .args([
            "--watch",
            "-o",
            "jsonpath={.metadata.uid} {.status.succeeded}{\"\\n\"}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get jobs --watch");

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then it completed, after exactly one successful migration Job
    witness.kill().expect("stop the watch");
    let seen = witness.wait_with_output().expect("the watch's output");
    let succeeded: std::collections::BTreeSet<String> = String::from_utf8_lossy(&seen.stdout)
        .lines()
        .filter_map(|line| {
            let (uid, succeeded) = line.split_once(' ')?;
            (succeeded.trim() == "1").then(|| uid.to_owned())
        })
        .collect();
    for rule in counted {
        assert!(
            f.proxy.injected(rule) > 0,
            "{:?}\n{}",
            f.proxy.seen(),
            ran.said
        );
    }
    assert_eq!(ran.code, 0, "{}", ran.said);
    nothing_lost(&f, "v2.0.0", &ran.said);
    assert_eq!(
        succeeded.len(),
        1,
        "one migration Job, succeeded once: {}",
        String::from_utf8_lossy(&seen.stdout)
    );
    let jobs = site::kubectl_ok(&["get", "jobs", "-n", &ns, "-o", "name"]);
    assert_eq!(jobs.trim(), "", "and cleaned up after");
}

#[test]
fn faults_on_the_apply_are_retried_and_applied_once() {
    // Given the server-side applies failing: 500s, a dropped connection, an apply whose answer
    // is lost after the apiserver made it, and a stalled one
    let f = Faulty::new("fapply", |_| {});
    let patches = Match::new("PATCH", &["/deployments/"]);
    let counted = [
        f.inject(patches.clone(), Fault::status(500), 2),
        f.inject(patches.clone(), Fault::Drop, 1),
        f.inject(patches.clone(), Fault::LoseResponse, 1),
        f.inject(patches, Fault::Stall(Duration::from_secs(2)), 1),
    ];
    let config = f.config().write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then it completed with nothing lost and nothing recorded twice
    for rule in counted {
        assert!(f.proxy.injected(rule) > 0, "{}", ran.said);
    }
    assert_eq!(ran.code, 0, "{}", ran.said);
    nothing_lost(&f, "v2.0.0", &ran.said);
}

#[test]
fn a_rollout_watch_cut_mid_way_resumes_from_its_last_resource_version() {
    // Given rollouts that take several seconds, and every deployment watch cut or ended early
    let f = Faulty::new("fwatch", |d| d["spec"]["minReadySeconds"] = json!(2));
    let watches = Match::any(&["/deployments"]).watching();
    let cut = f.inject(watches.clone(), Fault::CutStream { after_bytes: 1 }, 4);
    let ended = f.inject(watches.clone(), Fault::EndStream { after_bytes: 1 }, 2);
    let config = f.config().write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then it completed, and every watch after the first of a Deployment resumed from a
    // resourceVersion (never from "now" or from scratch)
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(f.proxy.injected(cut) >= 2, "{:?}", f.proxy.seen());
    assert!(f.proxy.injected(ended) >= 1, "{:?}", f.proxy.seen());
    for stage in f.site.stage_names() {
        let seen = f
            .proxy
            .seen_matching(&deployments(&f.ns(&stage)).watching());
        assert!(!seen.is_empty(), "{stage} was watched");
        for watch in &seen {
            let version = watch.query("resourceVersion").unwrap_or_default();
            assert!(
                !version.is_empty() && version != "0",
                "{stage}: a watch without a resourceVersion: {watch:?}"
            );
        }
    }
    nothing_lost(&f, "v2.0.0", &ran.said);
}

#[test]
fn lock_renewals_failing_during_the_bake_do_not_lose_the_lock() {
    // Given a bake of 8 s with a lock of 15 s renewed every 5 s, and the Lease requests failing
    // (500, stalled 3 s, dropped) from the moment the canary is applied
    let f = Faulty::new("fbake", |_| {});
    // A bake needs a check: http-health against the canary's simulated registry.
    let simulator = site::env("TAGSHIP_SIMULATOR_URL");
    let grant = simulator.trim_start_matches("http://").to_owned();
    let config = f
        .config()
        .lock_ttl("15s")
        .toml(&format!(
            "[plugins.up]\nsource = \"builtin:http-health\"\nallow_hosts = [\"{grant}\"]\nconfig = {{ url = \"{simulator}/ns/{}/v2/\" }}\n",
            f.ns("gstg-cny")
        ))
        .bake(
            "gstg-cny",
            "checks = [\"up\"]\nduration = \"8s\"\ninterval = \"2s\"\nfailure_limit = 3",
        )
        .write();
    let mut run = Background::spawn(&mut deploy_command(&config, &["--version", "v2.0.0"]));
    assert!(
        eventually(Duration::from_mins(1), || f.site.image("gstg-cny")
            == image_of("v2.0.0")),
        "the canary never got the release"
    );
    let leases = Match::any(&["/leases"]);
    let counted = [
        f.inject(leases.clone(), Fault::status(500), 2),
        f.inject(leases.clone(), Fault::Stall(Duration::from_secs(3)), 1),
        f.inject(leases, Fault::Drop, 1),
    ];
    assert!(run.is_running());
    let ran = run.finish();

    assert_eq!(ran.code, 0, "{}", ran.said);
    for rule in counted {
        assert!(
            f.proxy.injected(rule) > 0,
            "{:?}\n{}",
            f.proxy.seen(),
            ran.said
        );
    }
    nothing_lost(&f, "v2.0.0", &ran.said);
}

#[test]
fn faults_during_the_rollback_still_bring_the_previous_version_back() {
    // Given a crash-looping release (its rollout fails at the 10 s progress deadline) and the
    // rollback's apply failing (500 twice, a dropped connection, a lost answer)
    let f = Faulty::new("frb", |_| {});
    let patches = Match::new("PATCH", &["/deployments/"]);
    let counted = [
        f.proxy
            .inject(Rule::new(patches.clone(), Fault::status(500), 2).after(1)),
        f.proxy
            .inject(Rule::new(patches.clone(), Fault::Drop, 1).after(3)),
        f.proxy
            .inject(Rule::new(patches, Fault::LoseResponse, 1).after(4)),
    ];
    let config = f.config().write();

    // When it is deployed
    let ran = deploy(&config, &["--version", "v3.0.0-crashloop"]);

    // Then the run failed, the canary serves v1.0.0 again, the later stage never changed
    assert_eq!(ran.code, 1, "{}", ran.said);
    for rule in counted {
        assert!(
            f.proxy.injected(rule) > 0,
            "{:?}\n{}",
            f.proxy.seen(),
            ran.said
        );
    }
    assert!(ran.said.contains("v1.0.0 serves again"), "{}", ran.said);
    assert_eq!(f.site.image("gstg-cny"), image_of("v1.0.0"));
    assert!(
        eventually(Duration::from_mins(1), || f
            .site
            .rollout_in("local-1", "gstg-cny")
            .0),
        "v1.0.0 serves again"
    );
    assert_eq!(f.site.image("gstg"), image_of("v1.0.0"));
    let history = f.site.history("gstg-cny");
    assert!(
        history.iter().any(|h| h["action"] != "deployed"),
        "the failure is recorded: {history:?}"
    );
    assert!(
        !history.iter().any(|h| h["action"] == "deployed"),
        "{history:?}"
    );
    assert_eq!(f.site.lease_holder("gstg"), "");
}

#[test]
fn faults_on_the_history_write_leave_exactly_one_record() {
    // Given the first history write (a create) answered but lost after the apiserver stored it
    let f = Faulty::new("fhist", |_| {});
    let writes = |method: &str| Match::new(method, &["/configmaps", "tagship-history"]);
    let lost_create = f.inject(Match::new("POST", &["/configmaps"]), Fault::LoseResponse, 1);
    let config = f.config().write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then each stage has exactly one record of it
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(f.proxy.injected(lost_create), 1, "{:?}", f.proxy.seen());
    nothing_lost(&f, "v2.0.0", &ran.said);

    // Given the next history updates failing once (500) and once answered but lost
    let failed = f.inject(writes("PUT"), Fault::status(500), 1);
    let lost_update = f.inject(writes("PUT"), Fault::LoseResponse, 1);

    // When the next release is deployed
    let ran = deploy(&config, &["--version", "v2.1.0"]);

    // Then again one record per stage and release
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(
        (f.proxy.injected(failed), f.proxy.injected(lost_update)),
        (1, 1),
        "{:?}",
        f.proxy.seen()
    );
    nothing_lost(&f, "v2.1.0", &ran.said);
    for stage in f.site.stage_names() {
        let history = f.site.history(&stage);
        assert_eq!(history.len(), 2, "{stage}: {history:?}");
    }
}

#[test]
fn a_history_that_cannot_be_written_is_said_and_the_deploy_still_completes() {
    // Given every history write answered 500
    let f = Faulty::new("fnohist", |_| {});
    let failing = f.inject(
        Match::any(&["/configmaps"]).not_watching(),
        Fault::status(500),
        usize::MAX,
    );
    let config = f.config().write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then (the lifecycle's choice: a history write that fails does not fail a release that is
    // already serving, whose annotations name it and whose records a re-run fills in) the release
    // goes through, the run says the history could not be written, and the lock is released; no
    // record exists
    assert!(f.proxy.injected(failing) >= 8, "{:?}", f.proxy.seen());
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.said.contains("could not write the stage's history"),
        "{}",
        ran.said
    );
    for stage in f.site.stage_names() {
        assert_eq!(f.site.image(&stage), image_of("v2.0.0"), "{stage}");
        assert!(f.site.history(&stage).is_empty(), "{stage}");
        assert_eq!(
            f.site
                .annotations(&stage)
                .get("tagship.io/version")
                .map(String::as_str),
            Some("v2.0.0"),
            "{stage}: the audit annotation still names the release"
        );
    }
    assert_eq!(f.site.lease_holder("gstg"), "", "{}", ran.said);

    // When the same command runs again with the API healthy (straight to the apiserver), Then it
    // changes nothing and fills in the missing records
    let direct = f.site.config().write();
    let ran = deploy(&direct, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);
    for stage in f.site.stage_names() {
        let history = f.site.history(&stage);
        assert_eq!(history.len(), 1, "{stage}: {history:?}");
        assert_eq!(history[0]["action"], "deployed", "{stage}");
        assert_eq!(history[0]["version"], "v2.0.0", "{stage}");
    }
}

#[test]
fn an_apply_that_keeps_failing_stops_cleanly_with_nothing_changed() {
    // Given every apply answered 500
    let f = Faulty::new("fstop", |_| {});
    let before: Vec<String> = f
        .site
        .stage_names()
        .iter()
        .map(|s| f.site.resource_version(s))
        .collect();
    let failing = f.inject(
        Match::new("PATCH", &["/deployments/"]),
        Fault::status(500),
        usize::MAX,
    );
    let config = f.config().write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then it stops with a clear error after a bounded number of attempts (those that fit in the
    // retry's 20 s budget: at most 14 with back-offs of 0.1, 0.2, 0.4, 0.8, 1.6, then 2 s),
    // nothing changed, nothing recorded as deployed, the lock released
    assert_ne!(ran.code, 0, "{}", ran.said);
    assert!(ran.said.contains("apply"), "{}", ran.said);
    let attempts = f.proxy.injected(failing);
    assert!(
        (1..=14).contains(&attempts),
        "{attempts} attempts\n{}",
        ran.said
    );
    let after: Vec<String> = f
        .site
        .stage_names()
        .iter()
        .map(|s| f.site.resource_version(s))
        .collect();
    assert_eq!(after, before, "{}", ran.said);
    for stage in f.site.stage_names() {
        assert_eq!(f.site.image(&stage), image_of("v1.0.0"));
        assert!(
            !f.site
                .history(&stage)
                .iter()
                .any(|h| h["action"] == "deployed"),
            "{stage}"
        );
    }
    assert_eq!(f.site.lease_holder("gstg"), "", "{}", ran.said);
}

#[test]
fn an_apply_answered_503_every_time_is_reported_within_a_bounded_time() {
    // Given every apply answered 503 (which kube-rs's own retry layer, stacked under tagship's,
    // used to retry 15 times with delays growing towards 1000 s)
    let f = Faulty::new("f503", |_| {});
    let failing = f.inject(
        Match::new("PATCH", &["/deployments/"]),
        Fault::status(503),
        usize::MAX,
    );
    let config = f.config().write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then it gives up after tagship's bounded retries (20 s, 8 to 14 attempts), saying why
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.took < Duration::from_secs(45),
        "{:?}\n{}",
        ran.took,
        ran.said
    );
    assert!(ran.said.contains("503"), "{}", ran.said);
    assert!(
        (8..=14).contains(&f.proxy.injected(failing)),
        "{} attempts\n{}",
        f.proxy.injected(failing),
        ran.said
    );
    assert_eq!(f.site.image("gstg-cny"), image_of("v1.0.0"));
    assert_eq!(f.site.lease_holder("gstg"), "", "{}", ran.said);
}

#[test]
fn a_run_killed_with_sigkill_loses_its_lease_at_expiry_and_another_holder_finishes() {
    // Given a run holding the lock (ttl 15 s) killed mid-rollout
    let f = Faulty::new("fkill", |d| {
        d["spec"]["minReadySeconds"] = json!(5);
        d["spec"]["progressDeadlineSeconds"] = json!(120);
    });
    let config = f.config().lock_ttl("15s").lock_wait("60s").write();
    let args = ["--version", "v2.0.0"];
    let mut first =
        Background::spawn(deploy_command(&config, &args).env("TAGSHIP_HOLDER", "runner-a"));
    let mid_rollout = eventually(Duration::from_mins(1), || {
        f.site.image("gstg-cny") == image_of("v2.0.0")
            && !f.site.rollout_in("local-1", "gstg-cny").0
    });
    assert!(first.is_running(), "ended before it could be killed");
    let killed = first.kill();
    assert!(
        mid_rollout,
        "never saw the canary mid-rollout\n{}",
        killed.said
    );
    assert_eq!(f.site.lease_holder_who("gstg"), "runner-a");

    // When another holder runs the same deploy
    let ran = site::run(deploy_command(&config, &args).env("TAGSHIP_HOLDER", "runner-b"));

    // Then it waited for the Lease to expire, took it over and finished
    assert_eq!(ran.code, 0, "{}\n--- killed:\n{}", ran.said, killed.said);
    assert!(
        ran.said.contains("runner-a"),
        "it named the old holder\n{}",
        ran.said
    );
    for stage in f.site.stage_names() {
        assert_eq!(
            f.site.image(&stage),
            image_of("v2.0.0"),
            "{stage}\n{}",
            ran.said
        );
        assert!(f.site.rollout_in("local-1", &stage).0, "{stage}");
        assert_eq!(
            f.site
                .annotations(&stage)
                .get("tagship.io/version")
                .map(String::as_str),
            Some("v2.0.0"),
            "{stage}: the audit annotation names the release"
        );
    }
    // The canary's rollout completed while runner-b waited for the Lease, so runner-b found it
    // "already at the target"; the killed runner-a never wrote its record, so runner-b wrote it.
    let deployed = |stage: &str| {
        f.site
            .history(stage)
            .iter()
            .filter(|h| h["action"] == "deployed" && h["version"] == "v2.0.0")
            .count()
    };
    assert_eq!(deployed("gstg"), 1, "{}", ran.said);
    assert_eq!(deployed("gstg-cny"), 1, "{}", ran.said);
    assert_eq!(f.site.lease_holder("gstg"), "", "{}", ran.said);
}

/// Guards against a run that outlasts its own warning: with 8 attempts x a 30 s read timeout this
/// took 4 minutes while the warning said "retrying for about 10 s".
#[test]
fn an_apiserver_that_never_answers_is_reported_within_the_time_tagship_announces() {
    // Given an apiserver that accepts connections and never answers (every request held back)
    let f = Faulty::new("fhung", |_| {});
    let hung = hang_everything(&f);
    let config = f.config().write();

    // When a release is deployed
    let mut run = Timed::spawn(&mut deploy_command(&config, &["--version", "v2.0.0"]));
    let ended = run.wait(Duration::from_secs(90));

    // Then it says once that requests are failing and how long it keeps trying, gives up by
    // then (give or take a second) saying the server did not answer, and changed nothing
    let said = run.said();
    let (status, ended) = ended.unwrap_or_else(|| panic!("still running after 90 s\n{said}"));
    assert!(!status.success(), "{said}");
    let (warned, seconds) = announced(&run).unwrap_or_else(|| panic!("no warning\n{said}"));
    assert!(
        ended <= warned + Duration::from_secs(seconds) + Duration::from_millis(1500),
        "announced {seconds} s at {warned:?}, ended at {ended:?}\n{said}"
    );
    assert!(said.contains("no answer within"), "{said}");
    assert!(f.proxy.injected(hung) >= 2, "it retried\n{said}");
    eprintln!(
        "faults: hung apiserver: told at {warned:.1?} (\"about {seconds} s\"), reported and \
         exited at {ended:.1?}\n{said}"
    );
    for stage in f.site.stage_names() {
        assert_eq!(f.site.image(&stage), image_of("v1.0.0"), "{stage}");
    }
    assert_eq!(f.site.lease_holder("gstg"), "", "{said}");
}

/// Guards against watch failures counted instead of timed: hung watch requests (30 s each) then
/// kept a rollout waiting until its own timeout, with no warning.
#[test]
fn a_rollout_watch_the_apiserver_never_answers_gives_up_within_the_time_tagship_announces() {
    // Given the Deployment watch requests held back (accepted, never answered) as many times as
    // the rollout's watch tries within its patience
    let f = Faulty::with_stages("fwhang", vec![StageSpec::auto("gstg", "gstg")], |_| {});
    let hung = f.inject(
        Match::any(&["/deployments"]).watching(),
        Fault::Stall(Duration::from_mins(10)),
        3,
    );
    let config = f.config().write();

    // When a release is deployed
    let mut run = Timed::spawn(&mut deploy_command(&config, &["--version", "v2.0.0"]));
    let ended = run.wait(Duration::from_secs(150));

    // Then the rollout's watch gives up by the time its warning announced (give or take a
    // second), and the release is rolled back (whose watch the apiserver answers)
    let said = run.said();
    let (status, _) = ended.unwrap_or_else(|| panic!("still running after 150 s\n{said}"));
    assert_eq!(status.code(), Some(1), "{said}");
    assert_eq!(f.proxy.injected(hung), 3, "{said}");
    let (warned, seconds) = announced(&run).unwrap_or_else(|| panic!("no warning\n{said}"));
    let (gave_up, _) = run
        .line("cannot watch deployment")
        .unwrap_or_else(|| panic!("the watch never gave up\n{said}"));
    assert!(
        gave_up <= warned + Duration::from_secs(seconds) + Duration::from_secs(1),
        "announced {seconds} s at {warned:?}, gave up at {gave_up:?}\n{said}"
    );
    assert!(said.contains("v1.0.0 serves again"), "{said}");
    eprintln!(
        "faults: hung rollout watch: told at {warned:.1?} (\"about {seconds} s\"), gave up at \
         {gave_up:.1?}\n{said}"
    );
    assert_eq!(f.site.image("gstg"), image_of("v1.0.0"));
    assert_eq!(f.site.lease_holder("gstg"), "", "{said}");
}

/// Guards against a clean-up that hangs: the lock release on the way out used to hang on the same
/// server until the clean-up's 20 s cap.
#[test]
fn a_sigterm_while_the_apiserver_hangs_ends_the_run_within_seconds() {
    // Given a deploy holding the lock mid-rollout (pods available only after 60 s), and then an
    // apiserver that stops answering, with a request of the run hanging
    let f = Faulty::with_stages("fterm", vec![StageSpec::auto("gstg", "gstg")], |_| {});
    patch_spec(
        &f,
        "gstg",
        &json!({ "minReadySeconds": 60, "progressDeadlineSeconds": 120 }),
    );
    let config = f.config().write();
    let mut run = Timed::spawn(&mut deploy_command(&config, &["--version", "v2.0.0"]));
    assert!(
        eventually(Duration::from_mins(1), || f.site.image("gstg")
            == image_of("v2.0.0")),
        "never applied\n{}",
        run.said()
    );
    assert_eq!(f.site.lease_holder_who("gstg"), site::HOLDER);
    let hung = hang_everything(&f);
    assert!(
        eventually(Duration::from_secs(40), || f.proxy.injected(hung) > 0),
        "no request of the run hung\n{}",
        run.said()
    );

    // When CI cancels the job (SIGTERM)
    let sent = run.signal("TERM");
    let ended = run.wait(sent + Duration::from_secs(40));

    // Then it exits 1 within a few seconds, having tried to release the lock and said it could
    // not (the Lease expires on its own)
    let said = run.said();
    let (status, ended) =
        ended.unwrap_or_else(|| panic!("still running 40 s after SIGTERM\n{said}"));
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        ended <= sent + Duration::from_secs(8),
        "SIGTERM at {sent:?}, exit at {ended:?}\n{said}"
    );
    assert!(said.contains("interrupted by SIGTERM"), "{said}");
    assert!(said.contains("could not release the lock"), "{said}");
    eprintln!(
        "faults: SIGTERM while the apiserver hangs: exited {:.1?} after it\n{said}",
        ended.saturating_sub(sent)
    );
    assert_eq!(f.site.lease_holder_who("gstg"), site::HOLDER, "{said}");
}

/// Guards against a quiet watch taken for a failing one: a 30 s read timeout used to cut every
/// quiet watch, each cut counted as a failure (a warning at 60 s, "cannot watch deployment" and a
/// rollback after about 4 minutes).
///
/// Takes about three minutes (the rollout is quiet for 150 s); it mostly waits, so it runs
/// alongside the others.
#[test]
fn a_rollout_quiet_for_minutes_completes_without_a_warning() {
    // Given one replica replaced in place (maxSurge 0) by a pod that is available only 150 s
    // after it is ready (minReadySeconds), so the Deployment's status and its pods do not change
    // for 150 s: five of the old 30 s read timeouts, and past the old watch's warning at 60 s
    let f = Faulty::with_stages("fquiet", vec![StageSpec::auto("gstg", "gstg")], |_| {});
    patch_spec(
        &f,
        "gstg",
        &json!({
            "replicas": 1, "minReadySeconds": 150, "progressDeadlineSeconds": 600,
            "strategy": { "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": 0, "maxUnavailable": 1 } },
        }),
    );
    let config = f.config().rollout_timeout("10m").write();

    // When a release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then it waited the rollout out and completed, with no warning at all: a quiet watch is
    // not a failing one
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.took >= Duration::from_secs(150),
        "{:?}\n{}",
        ran.took,
        ran.said
    );
    assert!(!ran.said.contains("WARN"), "{}", ran.said);
    assert!(!ran.said.contains("are failing"), "{}", ran.said);
    eprintln!(
        "faults: a rollout quiet for 150 s: completed in {:.1?}\n{}",
        ran.took, ran.said
    );
    assert_eq!(f.site.image("gstg"), image_of("v2.0.0"));
    assert!(f.site.rollout_in("local-1", "gstg").0);
    let deployed = f
        .site
        .history("gstg")
        .iter()
        .filter(|h| h["action"] == "deployed" && h["version"] == "v2.0.0")
        .count();
    assert_eq!(deployed, 1, "{}", ran.said);
    assert_eq!(f.site.lease_holder("gstg"), "", "{}", ran.said);
    // and every watch asked the apiserver to end it (timeoutSeconds) and for bookmarks, and was
    // resumed from a version
    let watches = f.proxy.seen_matching(&Match::any(&["/"]).watching());
    assert!(!watches.is_empty());
    for watch in &watches {
        assert!(watch.query("timeoutSeconds").is_some(), "{watch:?}");
        assert_eq!(
            watch.query("allowWatchBookmarks"),
            Some("true"),
            "{watch:?}"
        );
        let version = watch.query("resourceVersion").unwrap_or_default();
        assert!(!version.is_empty() && version != "0", "{watch:?}");
    }
}
