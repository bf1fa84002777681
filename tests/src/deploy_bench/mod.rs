//! The deploy benchmark (`deploy-bench`): the real `tagship` binary against `kubectl`
//! on the local environment `tests/cluster/up` started, measured as whole processes.
//!
//! Every child runs under `/usr/bin/time -f %M` for its peak RSS and is reaped with `wait4` for
//! its user + system CPU time to the microsecond; wall time is taken here around the child. An independent watch on
//! the Deployments (kubectl's rollout rule, [`crate::rollout::deployment_rollout`], and the target
//! image) timestamps the moment the cluster finished; the children's output lines are timestamped
//! as they arrive on their pipes, so detection latency is "line arrived" minus "watch saw it".
//!
//! It works only in namespaces of its own (`bench-…`, deleted at the end) and never builds or
//! starts anything: the `tagship` binary is built by `cargo build --release -p tagship`.
//!
//! By concern: `process` (spawning, wall time, `wait4` CPU, peak RSS), `stats` (spreads,
//! medians, percentiles, units), `watch` (the benchmark's own watches), `place` (its namespaces,
//! Deployments and `tagship.toml`s), `parts` (one method of [`Bench`] per part), `markdown` (the
//! report's text). This file: the settings, and [`Bench`] running the parts in order.

mod markdown;
mod parts;
mod place;
mod process;
mod stats;
mod watch;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::harness::{Environment, unique_word};
use markdown::{
    load_average, write_clusters, write_idle, write_pairs, write_plugins, write_scale, write_stages,
};

pub use crate::fixtures::manifests::{IMAGE, bench_deployment as deployment};
pub(crate) use place::path_str;
pub use process::{Finished, Usage, run_timed};
pub use stats::Spread;
pub(crate) use stats::megabytes;
pub use watch::{CompletionWatch, stream_floor};

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `tagship` binary under test.
    pub tagship: PathBuf,
    /// Measured kubectl/tagship pairs (after one warm-up pair).
    pub pairs: usize,
    /// Measured runs per scale step (1, 10, 50 Deployments).
    pub scale_runs: usize,
    /// The Deployment counts of the scale steps.
    pub scale_sizes: Vec<usize>,
    /// Runs of each start-up command.
    pub startup_runs: usize,
    /// The parts to run (all of [`PARTS`] by default).
    pub parts: Vec<String>,
    /// Where the example plugins of `tests/plugins/build-examples` are, for the `interpreted`
    /// part (skipped without them).
    pub examples: Option<PathBuf>,
}

/// The parts of the benchmark, in the order they run.
pub const PARTS: [&str; 8] = [
    "pairs",
    "scale",
    "clusters",
    "stages",
    "plugins",
    "idle",
    "startup",
    "interpreted",
];

/// The whole benchmark: runs every part and returns the Markdown section.
pub struct Bench {
    env: Environment,
    settings: Settings,
    kubectl: PathBuf,
    cache: PathBuf,
}

impl Bench {
    /// Connects to the environment and checks the binaries.
    pub async fn new(settings: Settings) -> anyhow::Result<Self> {
        if !settings.tagship.is_file() {
            bail!(
                "no tagship binary at `{}`\nhint: cargo build --release -p tagship",
                settings.tagship.display()
            );
        }
        if !Path::new("/usr/bin/time").is_file() {
            bail!("no /usr/bin/time (it measures peak RSS)\nhint: apt-get install time");
        }
        let env = Environment::connect().await?;
        let kubectl = which("kubectl").context("no kubectl on PATH")?;
        let cache = std::env::temp_dir().join(format!("bench-cache-{}", unique_word()));
        Ok(Self {
            env,
            settings,
            kubectl,
            cache,
        })
    }

    /// The kubelet stand-in's delay before a pod is Ready, as `tests/cluster/up` recorded it.
    fn ready_after_ms(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.env.dir.join("env")).ok()?;
        crate::harness::read_env_file(&text)
            .get("TAGSHIP_READY_AFTER_MS")?
            .parse()
            .ok()
    }

    fn kube_args<'a>(&'a self, args: &[&'a str]) -> anyhow::Result<Vec<&'a str>> {
        let mut all = vec!["--kubeconfig", path_str(&self.env.kubeconfig)?];
        all.extend_from_slice(args);
        Ok(all)
    }

    fn tagship(&self, args: &[&str]) -> anyhow::Result<Finished> {
        self.tagship_with(args, &[])
    }

    fn tagship_with(&self, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Finished> {
        let mut all = vec![
            ("TAGSHIP_HOLDER", "deploy-bench"),
            ("TAGSHIP_CACHE_DIR", path_str(&self.cache)?),
        ];
        all.extend_from_slice(envs);
        run_timed(&self.settings.tagship, args, &all)
    }

    /// Runs every part; the Markdown section.
    pub async fn run(&self) -> anyhow::Result<String> {
        let load_before = load_average();
        let mut out = String::new();
        let mut body = String::new();
        let wants = |part: &str| self.settings.parts.iter().any(|p| p == part);
        if wants("pairs") {
            let pairs = self.pairs().await?;
            write_pairs(&mut body, &pairs, self.settings.pairs);
        }
        if wants("scale") {
            let scale = self.scale().await?;
            write_scale(&mut body, &scale);
        }
        if wants("clusters") {
            let steps = self.clusters().await?;
            write_clusters(&mut body, &steps);
        }
        if wants("stages") {
            let steps = self.stages().await?;
            write_stages(&mut body, &steps);
        }
        if wants("plugins") {
            let (runs, requests) = self.plugins().await?;
            write_plugins(&mut body, &runs, requests);
        }
        if wants("idle") {
            let usages = self.idle().await?;
            write_idle(&mut body, &usages);
        }
        if wants("startup") {
            body.push_str(&self.startup().await?);
        }
        if wants("interpreted") {
            self.interpreted(&mut body).await?;
        }
        let load_after = load_average();
        self.write_header(&mut out, &load_before, &load_after);
        out.push_str(&body);
        let _ = std::fs::remove_dir_all(&self.cache);
        Ok(out)
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
