//! The bad-input corpus: every case under `host/tests/bad_input/CATEGORY/CASE/` run against the
//! real binary, its exit code and full output compared with the case's `expected.txt`, and the
//! cluster checked unchanged after every case.
//!
//! Given a site on the local cluster (stage namespaces `gstg-cny`, `gstg`, `gprd` with the
//! registry's Deployment at `v1.0.0`), when a case's command runs in a copy of its directory
//! (placeholders filled in), then it exits with the snapshot's code and says exactly the
//! snapshot's words, and no Deployment's resourceVersion moved and no Lease, `ConfigMap` or Job
//! appeared in the site's namespaces.
//!
//! `TAGSHIP_BLESS=1` rewrites the snapshots from what the binary says now (review the diff);
//! `TAGSHIP_BAD_INPUT=TEXT` runs only the cases whose `CATEGORY/CASE` contains `TEXT`.
//! `host/tests/bad_input/README.md` documents the layout. Needs the local environment
//! (`tests/cluster/up`, its `env` file exported), like the other end-to-end tests.

#[path = "support/site.rs"]
mod site;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use site::{Site, kubectl, tagship};

/// The corpus must stay at least this large: each case pins tagship's answer to one bad input, so
/// the corpus may grow but not shrink, and cases lost to a moved or misnamed directory fail here
/// instead of passing unnoticed.
const MIN_CASES: usize = 40;
/// No case may run longer than this: a bad input must be refused quickly.
const CASE_TIMEOUT: Duration = Duration::from_secs(90);

struct Case {
    /// `CATEGORY/CASE`.
    id: String,
    category: String,
    dir: PathBuf,
    /// What the case breaks (the `# ` line of `cmd`).
    what: String,
    /// The command line, as written in `cmd`.
    line: String,
    /// A known bug that makes this case change the cluster (its `changes-cluster` file).
    changes_cluster: Option<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input")
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for category in sorted_dirs(&corpus_dir()) {
        for dir in sorted_dirs(&category) {
            let cmd = std::fs::read_to_string(dir.join("cmd"))
                .unwrap_or_else(|e| panic!("{}: every case has a `cmd` file: {e}", dir.display()));
            let what = cmd
                .lines()
                .find_map(|l| l.strip_prefix("# "))
                .unwrap_or_default()
                .to_owned();
            let line = cmd
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .unwrap_or_else(|| panic!("{}: `cmd` has no command line", dir.display()))
                .trim()
                .to_owned();
            let changes_cluster = std::fs::read_to_string(dir.join("changes-cluster"))
                .ok()
                .map(|t| t.trim().to_owned());
            cases.push(Case {
                id: format!("{}/{}", file_name(&category), file_name(&dir)),
                category: file_name(&category),
                dir,
                what,
                line,
                changes_cluster,
            });
        }
    }
    cases
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a named directory")
        .to_string_lossy()
        .into_owned()
}

/// Splits a command line on spaces; `'…'` quotes (so `''` is an empty argument).
fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                current.get_or_insert_with(String::new);
            }
            ' ' if !quoted => args.extend(current.take()),
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(!quoted, "unbalanced quote in `{line}`");
    args.extend(current);
    args
}

/// Placeholder → value, and value → the mark it is shown as in snapshots.
struct Substitutions {
    fill: Vec<(&'static str, String)>,
    marks: Vec<(String, String)>,
}

impl Substitutions {
    fn new(site: &Site) -> Self {
        let kubeconfig = site::env("TAGSHIP_KUBECONFIG");
        let text = std::fs::read_to_string(&kubeconfig).expect("read the environment's kubeconfig");
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap_or_else(|| panic!("the environment's kubeconfig has no `{key}`"))
                .trim()
                .to_owned()
        };
        let prometheus_url = site::env("TAGSHIP_PROMETHEUS_URL");
        let prometheus = prometheus_url.trim_start_matches("http://").to_owned();
        let prefix = site
            .ns("gstg")
            .strip_suffix("-gstg")
            .expect("namespaces are PREFIX-STAGE")
            .to_owned();
        let server = field("server:");
        let fill = vec![
            ("@KUBECONFIG@", kubeconfig.clone()),
            ("@PROMETHEUS_URL@", prometheus_url.clone()),
            ("@PROMETHEUS@", prometheus.clone()),
            ("@PREFIX@", prefix.clone()),
            ("@SERVER@", server.clone()),
            ("@CA_DATA@", field("certificate-authority-data:")),
            ("@TOKEN@", field("token:")),
        ];
        let marks = vec![
            (kubeconfig, "[KUBECONFIG]".to_owned()),
            (prometheus_url, "[PROMETHEUS_URL]".to_owned()),
            (prometheus, "[PROMETHEUS]".to_owned()),
            (server.clone(), "[SERVER]".to_owned()),
            (
                server.trim_start_matches("https://").to_owned(),
                "[SERVER_ADDR]".to_owned(),
            ),
            (prefix, "[PREFIX]".to_owned()),
            // The environment's contexts as an error lists them ("(it has `local-1`, …)");
            // their number depends on `tests/cluster/up --clusters`.
            (
                format!(
                    "(it has {})",
                    site::env("TAGSHIP_CONTEXTS")
                        .split_whitespace()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "(it has [CONTEXTS])".to_owned(),
            ),
        ];
        Substitutions { fill, marks }
    }

    /// Copies the case's input files into `to`, filling the placeholders of text files.
    fn copy_inputs(&self, from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).expect("read case directory") {
            let path = entry.expect("directory entry").path();
            let name = file_name(&path);
            let target = to.join(&name);
            if path.is_dir() {
                std::fs::create_dir_all(&target).expect("create directory");
                self.copy_inputs(&path, &target);
                continue;
            }
            if ["cmd", "expected.txt", "changes-cluster"].contains(&name.as_str()) {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read input file");
            let bytes = match String::from_utf8(bytes) {
                Ok(mut text) => {
                    for (placeholder, value) in &self.fill {
                        text = text.replace(placeholder, value);
                    }
                    text.into_bytes()
                }
                Err(binary) => binary.into_bytes(),
            };
            std::fs::write(&target, bytes).expect("write input file");
        }
    }

    fn normalise(&self, text: &str, dir: &Path) -> String {
        let mut text = text.to_owned();
        let canonical = dir.canonicalize().expect("canonical temp dir");
        for d in [canonical.as_path(), dir] {
            text = text.replace(&*d.to_string_lossy(), "[DIR]");
        }
        for (value, mark) in &self.marks {
            text = text.replace(value.as_str(), mark);
        }
        // Client retries log one line per attempt; how many happen in the time allowed varies.
        let mut lines: Vec<&str> = Vec::new();
        for line in text.lines() {
            if lines.last() != Some(&line) {
                lines.push(line);
            }
        }
        let mut out = lines
            .iter()
            .map(|l| mask_clock(l))
            .collect::<Vec<_>>()
            .join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// `HH:MM:SS ` at the start of a progress line becomes `[TIME] `.
fn mask_clock(line: &str) -> String {
    let bytes = line.as_bytes();
    let clock = bytes.len() > 9
        && bytes[..8].iter().enumerate().all(|(i, b)| {
            if i % 3 == 2 {
                *b == b':'
            } else {
                b.is_ascii_digit()
            }
        })
        && bytes[8] == b' ';
    if clock {
        format!("[TIME]{}", &line[8..])
    } else {
        line.to_owned()
    }
}

/// What the cluster holds in the site's namespaces: `KIND NAMESPACE NAME RESOURCEVERSION` lines
/// of Deployments, Leases, `ConfigMap`s (but the API server's own `kube-root-ca.crt`) and Jobs.
fn cluster_state(prefix: &str) -> Vec<String> {
    let out = kubectl(&[
        "get",
        "deployments,leases,configmaps,jobs",
        "--all-namespaces",
        "--no-headers",
        "-o",
        "custom-columns=KIND:.kind,NS:.metadata.namespace,NAME:.metadata.name,RV:.metadata.resourceVersion",
    ]);
    assert!(
        out.status.success(),
        "kubectl get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| {
            let mut fields = l.split(' ');
            let (kind, ns, name) = (fields.next(), fields.next(), fields.next());
            ns.is_some_and(|ns| ns.starts_with(&format!("{prefix}-")))
                && !(kind == Some("ConfigMap") && name == Some("kube-root-ca.crt"))
        })
        .collect();
    lines.sort();
    lines
}

/// The cluster state once the controllers have stopped touching the site's objects.
fn settled_state(prefix: &str) -> Vec<String> {
    let mut last = cluster_state(prefix);
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(1));
        let now = cluster_state(prefix);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the site's objects keep changing: {last:#?}");
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn run_case(args: &[String], dir: &Path) -> Ran {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = tagship(&args);
    cmd.current_dir(dir)
        .env_remove("KUBECONFIG")
        .env_remove("SLACK_WEBHOOK_URL")
        .env_remove("TAGSHIP_APP_VERSION")
        .env_remove("TAGSHIP_LOG")
        .env("NO_COLOR", "1");
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start tagship");
    while child.try_wait().expect("poll tagship").is_none() {
        if started.elapsed() > CASE_TIMEOUT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect tagship's output");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn snapshot(case: &Case, ran: &Ran, subs: &Substitutions, dir: &Path) -> String {
    let mut text = format!(
        "# {}\n$ tagship {}\nexit: {}\n",
        case.what, case.line, ran.code
    );
    let _ = write!(
        text,
        "--- stdout\n{}--- stderr\n{}",
        subs.normalise(&ran.stdout, dir),
        subs.normalise(&ran.stderr, dir)
    );
    text
}

#[test]
fn every_bad_input_is_refused_with_its_snapshot_and_changes_nothing() {
    let bless = std::env::var_os("TAGSHIP_BLESS").is_some_and(|v| v == "1");
    let filter = std::env::var("TAGSHIP_BAD_INPUT").unwrap_or_default();
    let all = cases();
    assert!(
        all.len() >= MIN_CASES,
        "the corpus has {} cases; keep at least {MIN_CASES}",
        all.len()
    );
    // A filter that matches nothing must not pass as "every case is fine".
    assert!(
        all.iter().any(|c| c.id.contains(&filter)),
        "TAGSHIP_BAD_INPUT=`{filter}` matches no case; the cases are `CATEGORY/CASE`, e.g. `versions/version-empty`"
    );
    let site = Site::new("badin");
    let subs = Substitutions::new(&site);
    let prefix = site.ns("gstg").trim_end_matches("-gstg").to_owned();
    let before = settled_state(&prefix);
    assert_eq!(
        before
            .iter()
            .filter(|l| l.starts_with("Deployment "))
            .count(),
        3,
        "the site has one Deployment per stage: {before:#?}"
    );

    let mut failures = Vec::new();
    let mut tried: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    let mut last = before.clone();
    let mut known_changes = Vec::new();
    for case in all.iter().filter(|c| c.id.contains(&filter)) {
        let dir = tempfile::tempdir().expect("temporary directory");
        subs.copy_inputs(&case.dir, dir.path());
        let ran = run_case(&split_args(&case.line), dir.path());
        *tried.entry(case.category.clone()).or_default() += 1;
        let actual = snapshot(case, &ran, &subs, dir.path());
        let expected_path = case.dir.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected.txt");
        } else {
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != actual {
                failures.push(format!(
                    "{}: the output differs from expected.txt (TAGSHIP_BLESS=1 rewrites it)\n--- expected\n{expected}--- actual\n{actual}",
                    case.id
                ));
            }
        }
        if ran.code == 0 {
            failures.push(format!("{}: a bad input was accepted (exit 0)", case.id));
        }
        if ran.took >= CASE_TIMEOUT {
            failures.push(format!("{}: still running after {CASE_TIMEOUT:?}", case.id));
        }
        let after = cluster_state(&prefix);
        if let Some(bug) = &case.changes_cluster {
            // A known bug, kept visible: the case must still change the cluster, so that the
            // marker is removed (and the strict check applies) as soon as it is fixed.
            if after == last {
                failures.push(format!(
                    "{}: no longer changes the cluster; delete its `changes-cluster` file ({bug})",
                    case.id
                ));
            }
            known_changes.push(format!("{}: {bug}", case.id));
            last = after;
        } else if after != last {
            failures.push(format!(
                "{}: the cluster changed\n--- before\n{}\n--- after\n{}",
                case.id,
                last.join("\n"),
                after.join("\n")
            ));
            last = after;
        }
    }
    if last != before && known_changes.is_empty() {
        failures.push("the cluster differs from before the first case".to_owned());
    }
    let total: usize = tried.values().sum();
    eprintln!(
        "bad inputs tried: {total} in {:.1?} ({}); cluster unchanged after each: {}; known to change it: {known_changes:?}",
        started.elapsed(),
        tried
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        failures.iter().all(|f| !f.contains("the cluster changed"))
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn command_lines_split_on_spaces_with_single_quotes() {
    assert_eq!(
        split_args("deploy --version '' --config 'a b.toml'"),
        ["deploy", "--version", "", "--config", "a b.toml"]
    );
}
