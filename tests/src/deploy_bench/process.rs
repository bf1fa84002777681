//! Whole child processes, measured: spawned under `/usr/bin/time -f %M` for their peak RSS,
//! reaped with `wait4` for their user + system CPU time, timed around (spawn to reap), and their
//! output lines timestamped as they arrive.

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::harness::unique_word;

/// What one child process used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Wall time, taken by this process around the child (spawn to reap).
    pub wall: Duration,
    /// User + system CPU time of the child.
    pub cpu: Duration,
    /// Peak resident set size of the child, in KiB.
    pub rss_kib: u64,
}

/// A finished child: its usage, exit code, and every output line with the moment it arrived.
#[derive(Debug)]
pub struct Finished {
    /// What it used.
    pub usage: Usage,
    /// Its exit code (-1 when killed by a signal).
    pub code: i32,
    /// When it exited (as seen here).
    pub ended: Instant,
    /// stdout and stderr lines, each with its arrival time.
    pub lines: Vec<(Instant, String)>,
}

impl Finished {
    /// When the first line containing `needle` arrived.
    pub fn line_at(&self, needle: &str) -> Option<Instant> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    /// When the last line containing `needle` arrived.
    pub fn last_line_at(&self, needle: &str) -> Option<Instant> {
        self.lines
            .iter()
            .rev()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }

    /// Every output line, in order of arrival.
    pub fn said(&self) -> String {
        self.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `program ARGS` to its end under `/usr/bin/time -f %M`, timestamping its output lines.
///
/// CPU is what `wait4` reports for `/usr/bin/time` and its reaped child, to the microsecond
/// (`time` itself adds a little: the `/bin/true` row of the start-up table is both). Peak RSS is
/// `time`'s `%M`: `wait4`'s `ru_maxrss` of a child spawned straight from here would include the
/// RSS of this process at the fork (the kernel keeps the pre-exec high-water mark), ~15 MB.
///
/// # Panics
///
/// When a pipe reader thread panicked while holding the lines (a poisoned lock).
pub fn run_timed(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Finished> {
    let rss_file = std::env::temp_dir().join(format!("deploy-bench-rss-{}", unique_word()));
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in [
        "TAGSHIP_VERSION",
        "TAGSHIP_CONFIG",
        "CI",
        "GITLAB_CI",
        "CI_COMMIT_TAG",
        "CI_PIPELINE_ID",
    ] {
        cmd.env_remove(name);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting `{}` under /usr/bin/time", program.display()))?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|pipe| {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                lines.lock().expect("lines lock").push((at, line));
            }
        })
    })
    .collect();
    let (code, cpu, _) = reap(&child)?;
    let ended = Instant::now();
    for reader in readers {
        let _ = reader.join();
    }
    let rss = std::fs::read_to_string(&rss_file)
        .with_context(|| format!("reading `{}`", rss_file.display()))?;
    let _ = std::fs::remove_file(&rss_file);
    // A failing child adds a line ("Command exited with non-zero status 1") before it.
    let rss_kib = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("unexpected /usr/bin/time output: {rss:?}"))?;
    let mut lines = std::mem::take(&mut *lines.lock().expect("lines lock"));
    lines.sort_by_key(|(t, _)| *t);
    Ok(Finished {
        usage: Usage {
            wall: ended - started,
            cpu,
            rss_kib,
        },
        code,
        ended,
        lines,
    })
}

/// Waits for `child` with `wait4`: its exit code (-1 when killed by a signal), user + system CPU
/// time of it and its reaped descendants, and its peak RSS in KiB.
#[allow(
    unsafe_code,
    reason = "wait4 is the one call that reports a child's own rusage"
)]
fn reap(child: &std::process::Child) -> anyhow::Result<(i32, Duration, u64)> {
    let pid = libc::pid_t::try_from(child.id()).context("a child pid fits pid_t")?;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data; all-zero is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes; `pid` is our own unreaped child
        // (std's `Child` is never waited on here, so it is reaped exactly once).
        let reaped = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4 on a benchmark child");
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((
        code,
        timeval(usage.ru_utime) + timeval(usage.ru_stime),
        u64::try_from(usage.ru_maxrss).unwrap_or_default(),
    ))
}

/// A `timeval` of `rusage` as a [`Duration`].
pub(super) fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or_default())
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or_default())
}
