//! The architecture invariants of ARCHITECTURE.md that a machine can check, checked on the
//! source: which module may name which, where `unsafe` may be allowed, who writes to the
//! terminal, and how large a file may grow before it should be split. (`unsafe_code` and the
//! print macros are also denied by lints; these tests keep the exceptions where the document
//! says they are.)

use std::path::{Path, PathBuf};

/// Every `.rs` file below `host/src/<dir>` (and `host/src/<dir>.rs`), with its code lines: the
/// lines that are not comments, so a doc comment may name what the code must not.
fn sources(dir: &str) -> Vec<(PathBuf, Vec<(usize, String)>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let module_file = src.join(format!("{dir}.rs"));
    if dir.is_empty() {
        walk(&src, &mut files);
    } else {
        if module_file.is_file() {
            files.push(module_file);
        }
        walk(&src.join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            let code = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim_start().starts_with("//"))
                .map(|(i, line)| (i + 1, line.to_owned()))
                .collect();
            (path, code)
        })
        .collect()
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The code lines of `dir` that name any of `forbidden`, as `file:line: text`.
fn naming(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, code) in sources(dir) {
        for (n, line) in code {
            if forbidden.iter().any(|f| names(&line, f)) {
                found.push(format!("{}:{n}: {}", relative(&path), line.trim()));
            }
        }
    }
    found
}

/// Whether `line` names the path `what` (`crate::cluster`, `kube`) as a whole path segment.
fn names(line: &str, what: &str) -> bool {
    line.match_indices(what).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + what.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn the_lifecycle_names_no_adapter() {
    let found = naming(
        "lifecycle",
        &[
            "kube",
            "k8s_openapi",
            "wasmtime",
            "reqwest",
            "hyper",
            "crate::cluster",
            "crate::plugins",
            "crate::wiring",
            "crate::registry",
            "crate::gitlab",
            "crate::cli",
        ],
    );
    assert!(
        found.is_empty(),
        "lifecycle decides through its ports only:\n{}",
        found.join("\n")
    );
}

#[test]
fn plugins_know_nothing_of_deploys() {
    let found = naming(
        "plugins",
        &[
            "crate::lifecycle",
            "crate::wiring",
            "crate::cluster",
            "crate::cli",
            "crate::journal",
        ],
    );
    assert!(
        found.is_empty(),
        "plugins answer what a plugin says about a context, nothing of deploys:\n{}",
        found.join("\n")
    );
}

#[test]
fn nothing_below_the_cli_calls_back_into_it() {
    let found: Vec<String> = naming("", &["crate::cli"])
        .into_iter()
        .filter(|line| !line.starts_with("cli.rs:") && !line.starts_with("cli/"))
        .collect();
    assert!(
        found.is_empty(),
        "adapters and the lifecycle never call the CLI:\n{}",
        found.join("\n")
    );
}

#[test]
fn unsafe_is_allowed_only_where_the_architecture_says() {
    let allowed = ["cli/lock.rs", "plugins/engine.rs", "plugins/sandbox.rs"];
    let found: Vec<String> = naming("", &["unsafe_code"])
        .into_iter()
        .filter(|line| !allowed.iter().any(|a| line.starts_with(&format!("{a}:"))))
        .collect();
    assert!(
        found.is_empty(),
        "`unsafe` is denied but in the three places ARCHITECTURE.md names:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_output_modules_write_to_the_terminal() {
    // terminal.rs prints every line and all data; progress.rs asks whether stderr is a terminal
    // (its live line is drawn by indicatif); cli.rs gives tracing its writer. The print macros
    // are denied elsewhere by the `print_stdout` and `print_stderr` lints of lib.rs.
    let found: Vec<String> = naming(
        "",
        &[
            "std::io::stdout",
            "std::io::stderr",
            "io::stdout",
            "io::stderr",
            "clippy::print_stdout",
            "clippy::print_stderr",
        ],
    )
    .into_iter()
    .filter(|line| {
        // The lint levels themselves (lib.rs, main.rs) name the lints too.
        !line.contains("#![warn(clippy::print_stdout, clippy::print_stderr)]")
            && !["terminal.rs:", "progress.rs:", "cli.rs:"]
                .iter()
                .any(|ok| line.starts_with(ok))
    })
    .collect();
    assert!(
        found.is_empty(),
        "only terminal.rs, progress.rs and cli.rs (tracing) write to the terminal:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_grows_past_a_size_that_holds_one_idea() {
    // Tests of one module may be long (one idea: that module); everything else over this many
    // lines is worth splitting by idea, as ARCHITECTURE.md's module map does.
    const LIMIT: usize = 700;
    let too_long: Vec<String> = sources("")
        .into_iter()
        .filter(|(path, _)| !path.ends_with("tests.rs"))
        .filter_map(|(path, _)| {
            let lines = std::fs::read_to_string(&path).ok()?.lines().count();
            (lines > LIMIT).then(|| format!("{} ({lines} lines)", relative(&path)))
        })
        .collect();
    assert!(
        too_long.is_empty(),
        "split by idea (one file each), keeping tests beside what they test:\n{}",
        too_long.join("\n")
    );
}
