//! Running the `tagship` binary under test: to its end, or in the background.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::HOLDER;

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Ran {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Both, stdout first: what a user saw. Use it in assertion messages.
    pub said: String,
    /// Wall time of the run.
    pub took: Duration,
}

impl Ran {
    fn from_output(out: &Output, took: Duration) -> Self {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        Ran {
            code: out.status.code().unwrap_or(-1),
            said: format!("{stdout}{stderr}"),
            stdout,
            stderr,
            took,
        }
    }
}

/// The `tagship` binary under test with `args`, as tests run it: holder [`HOLDER`], the plugin
/// cache in the target directory (shared by every test, so built-ins compile once), stdout and
/// stderr piped. Add `.env(..)` or `.env_remove(..)` as needed, then [`run`] or `.spawn()`.
pub fn tagship(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagship"));
    cmd.args(args)
        .env("TAGSHIP_HOLDER", HOLDER)
        .env(
            "TAGSHIP_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("tagship-cache"),
        )
        .env_remove("TAGSHIP_VERSION")
        .env_remove("TAGSHIP_CONFIG")
        .env_remove("CI_COMMIT_TAG")
        .env_remove("CI_PIPELINE_ID")
        // Plain lines unless a test asks for CI mode (`.env("CI", "true")`).
        .env_remove("CI")
        .env_remove("GITLAB_CI")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end.
pub fn run(cmd: &mut Command) -> Ran {
    let started = Instant::now();
    let out = cmd.output().expect("run tagship");
    Ran::from_output(&out, started.elapsed())
}

/// Waits for a child started from [`tagship`] (e.g. in the background) and collects its output.
pub fn finish(child: Child, started: Instant) -> Ran {
    let out = child.wait_with_output().expect("wait for tagship");
    Ran::from_output(&out, started.elapsed())
}

/// `tagship deploy --config CONFIG ARGS…` to its end.
pub fn deploy(config: &Path, args: &[&str]) -> Ran {
    run(&mut deploy_command(config, args))
}

/// The command of [`deploy`], not started: for runs in the background.
pub fn deploy_command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = tagship(&["deploy", "--config", path_str(config)]);
    cmd.args(args);
    cmd
}

/// `tagship SUBCOMMAND… ARGS… --config CONFIG` to its end, e.g.
/// `command(&config, &["lock", "acquire"], &["--stage", "gstg", "--holder", "rails"])`.
pub fn command(config: &Path, subcommand: &[&str], args: &[&str]) -> Ran {
    let mut cmd = tagship(subcommand);
    cmd.args(args).arg("--config").arg(config);
    run(&mut cmd)
}

/// A run of the binary in the background (e.g. a deploy waiting for a lock, or one to kill).
/// Killed with SIGKILL if still running when dropped, so a failing test leaves no process behind.
pub struct Background {
    child: Option<Child>,
    started: Instant,
}

impl Background {
    /// Starts `cmd` (from [`tagship`] or [`deploy_command`]).
    pub fn spawn(cmd: &mut Command) -> Self {
        Background {
            child: Some(cmd.spawn().expect("start tagship")),
            started: Instant::now(),
        }
    }

    /// Its process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not finished").id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("not finished");
        child.try_wait().expect("poll tagship").is_none()
    }

    /// Kills it with SIGKILL (no chance to clean up: no lock release, nothing) and collects
    /// what it said until then.
    pub fn kill(mut self) -> Ran {
        let mut child = self.child.take().expect("not finished");
        child.kill().expect("SIGKILL tagship");
        finish(child, self.started)
    }

    /// Waits for its end.
    pub fn finish(mut self) -> Ran {
        finish(self.child.take().expect("not finished"), self.started)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `path` as text (test paths are UTF-8).
///
/// Not `tagship_tests::deploy_bench::path_str` (an error, for the benchmark): host's tests panic.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
