//! `tagship` run as a plugin author runs it (the real binary), the canary stage's deploy context
//! on stdin and a plugin cache per suite: shared by the suites that run plugins through the CLI
//! (`builtins.rs`, `sandbox_attacks.rs`, `plugin_tools.rs`, `interpreted_plugins.rs`).

#![allow(dead_code, reason = "each test crate uses part of this")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

/// A deploy context of the canary stage, as `--input` reads it.
pub const CTX: &str =
    r#"{"component":"registry","version":"v3.1.0","stage":"gstg-cny","environment":"gstg"}"#;

/// The component file of test program `name` (`tp-wasi-http`), as an argument.
pub fn guest(name: &str) -> String {
    format!(
        "{}/{}.wasm",
        env!("TAGSHIP_GUESTS_DIR"),
        name.replace('-', "_")
    )
}

/// The plugin cache directory `name` (one per suite: compiling with a debug build takes
/// seconds, and the suites' caches must not race).
pub fn cache(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// What a `tagship plugin run` said.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// stdout as JSON; `Null` when it is not JSON (a load error prints none).
    pub json: serde_json::Value,
    pub took: Duration,
}

impl Run {
    /// A string field of the JSON result (empty when absent).
    pub fn field(&self, key: &str) -> String {
        self.json[key].as_str().unwrap_or_default().to_owned()
    }

    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// `tagship plugin run PLUGIN --input - ARGS` with `input` on stdin, `env` set and the plugin
/// cache `cache_name`.
pub async fn run(
    plugin: &str,
    input: &str,
    args: &[&str],
    env: &[(&str, &str)],
    cache_name: &str,
) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tagship"));
    cmd.args(["plugin", "run", plugin, "--input", "-"])
        .args(args)
        .env("TAGSHIP_CACHE_DIR", cache(cache_name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run tagship");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// `tagship ARGS` (any command) with [`CTX`] on stdin and the plugin cache `cache_dir`.
pub fn tagship(args: &[&str], cache_dir: &std::path::Path) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tagship"))
        .args(args)
        .env("TAGSHIP_CACHE_DIR", cache_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tagship");
    let _ = child.stdin.take().unwrap().write_all(CTX.as_bytes());
    child.wait_with_output().unwrap()
}
