//! The Markdown the benchmark prints: its header, one section per part, and the cell formats.

use std::fmt::Write as _;
use std::time::Duration;

use super::Bench;
use super::parts::{Pair, ScaleRun};
use super::process::Usage;
use super::stats::{Spread, cpus, median, millis, rss, walls};
use super::watch::StreamFloor;

pub(super) fn ms(x: f64) -> String {
    format!("{x:.0} ms")
}
pub(super) fn ms1(x: f64) -> String {
    format!("{x:.1} ms")
}
pub(super) fn mb(x: f64) -> String {
    format!("{x:.1} MB")
}
pub(super) fn ratio(x: f64) -> String {
    format!("{x:.2}")
}
pub(super) fn show(values: &[f64], f: fn(f64) -> String) -> String {
    Spread::of(values).map_or_else(|| "—".to_owned(), |s| s.show(f))
}

impl Bench {
    /// The section's header: the machine, its load, the binaries and the cluster.
    pub(super) fn write_header(&self, out: &mut String, before: &str, after: &str) {
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(str::to_owned))
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let busy = [before, after].iter().any(|l| {
            l.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
                > Some(1.0)
        });
        let _ = writeln!(out, "## deploy-bench: deploys against kubectl\n");
        let _ = writeln!(
            out,
            "Machine: {cpus} CPUs, {}, kernel {}. Load average before: {before}; after: {after}.{}",
            mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
            kernel.trim(),
            if busy {
                " **The machine was shared with other builds and tests (load average above 1): \
                 every wall time here is pessimistic and noisy.**"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "\ntagship: `{}` (`cargo build --release -p tagship`); kubectl: `{}`. Cluster: the \
             local environment of `tests/cluster/up` (`{}`, {} cluster(s)); its kubelet stand-in makes a \
             pod Ready {}. Every child runs under `/usr/bin/time -f %M` (its peak RSS) and is reaped \
             with `wait4`: CPU = user + system of the child and `time`, to the microsecond (the \
             `/bin/true` row is what `time` and a trivial child cost); wall time is taken by the \
             benchmark around the child (spawn to reap, including `time`'s exec).\n",
            self.settings.tagship.display(),
            self.kubectl.display(),
            self.env.dir.display(),
            self.env.contexts.len(),
            match self.ready_after_ms() {
                Some(0) => "at once (`TAGSHIP_READY_AFTER_MS=0`)".to_owned(),
                Some(ms) => format!(
                    "after {ms} ms (**not at once**: start the environment with `TAGSHIP_READY_AFTER_MS=0`)"
                ),
                None => "after its default delay (300 ms; the env file does not say)".to_owned(),
            }
        );
    }
}

pub(super) fn write_pairs(out: &mut String, pairs: &[Pair], wanted: usize) {
    let k: Vec<Usage> = pairs.iter().map(|p| p.kubectl).collect();
    let t: Vec<Usage> = pairs.iter().map(|p| p.tagship).collect();
    let per = |f: fn(&Usage) -> f64| -> Vec<f64> {
        pairs
            .iter()
            .map(|p| f(&p.tagship) / f(&p.kubectl))
            .collect()
    };
    let wall_ratio = per(|u| u.wall.as_secs_f64());
    let cpu_ratio = per(|u| u.cpu.as_secs_f64());
    #[allow(clippy::cast_precision_loss, reason = "KiB of a process fit an f64")]
    let rss_ratio = per(|u| u.rss_kib as f64);
    let _ = writeln!(
        out,
        "### Against kubectl: one Deployment's image, one stage, no checks, no bake\n\n\
         {n} interleaved pairs (of {wanted} asked, after one warm-up pair), each: A = `kubectl apply \
         --server-side -f deployments.json` then `kubectl rollout status deployment/gitlab-registry \
         -n NS --timeout=120s`; B = `tagship deploy --config tagship.toml --version vX` (one stage, \
         lock in the same namespace, history record). Each side its own namespace and Deployment \
         (2 replicas, a `registry` and a `sidecar` container), the same new tag each pair. Ratios are \
         tagship/kubectl pair by pair. kubectl's RSS is the larger of its two processes, its CPU \
         and wall the sum.\n",
        n = pairs.len()
    );
    let rss_t = rss(&t);
    let cpu_t = cpus(&t);
    let _ = writeln!(
        out,
        "| | kubectl (A) | tagship (B) | ratio B/A per pair | goal |\n|---|---|---|---|---|\n\
         | wall | {} | {} | {} | ratio <= 1.0: {} |\n\
         | CPU (user+sys) | {} | {} | {} | ratio <= 0.5: {} |\n\
         | peak RSS | {} | {} | {} | tagship <= 40 MB: {} |",
        show(&walls(&k), ms),
        show(&walls(&t), ms),
        show(&wall_ratio, ratio),
        met(median(&wall_ratio) <= 1.0),
        show(&cpus(&k), ms),
        show(&cpu_t, ms),
        show(&cpu_ratio, ratio),
        met(median(&cpu_ratio) <= 0.5),
        show(&rss(&k), mb),
        show(&rss_t, mb),
        show(&rss_ratio, ratio),
        met(rss_t.iter().copied().fold(0.0, f64::max) <= 40.0),
    );
    let sum = |u: &[Usage], f: fn(&Usage) -> Duration| u.iter().map(f).sum::<Duration>();
    let _ = writeln!(
        out,
        "\nRatio of the sums over all pairs: wall {:.2}, CPU {:.2} ({} ms of tagship against {} ms of kubectl).",
        sum(&t, |u| u.wall).as_secs_f64() / sum(&k, |u| u.wall).as_secs_f64(),
        sum(&t, |u| u.cpu).as_secs_f64() / sum(&k, |u| u.cpu).as_secs_f64(),
        sum(&t, |u| u.cpu).as_millis(),
        sum(&k, |u| u.cpu).as_millis(),
    );
    let t_detect: Vec<f64> = pairs.iter().map(|p| p.tagship_detect_ms).collect();
    let k_detect: Vec<f64> = pairs.iter().map(|p| p.kubectl_detect_ms).collect();
    let t_after: Vec<f64> = pairs.iter().map(|p| p.tagship_after_ms).collect();
    let k_after: Vec<f64> = pairs.iter().map(|p| p.kubectl_after_ms).collect();
    let _ = writeln!(
        out,
        "\n### Detection latency\n\nFrom the moment the benchmark's own watch (a kube-rs watcher on \
         the namespace, kubectl's rollout rule, the new image) saw the rollout complete, to the \
         moment the line arrived on the child's pipe: tagship's `rollout complete`, kubectl's \
         `successfully rolled out`. \"Exit\" is the same to the child's exit (tagship then writes \
         its record and releases the lock). Negative: the child saw it before the benchmark's watch.\n\n\
         | | tagship | kubectl rollout status | goal |\n|---|---|---|---|\n\
         | line after the cluster finished | {} | {} | tagship p50 <= 50 ms: {} |\n\
         | exit after the cluster finished | {} | {} | |",
        show(&t_detect, ms1),
        show(&k_detect, ms1),
        met(median(&t_detect) <= 50.0),
        show(&t_after, ms1),
        show(&k_after, ms1),
    );
}

pub(super) fn write_scale(out: &mut String, steps: &[(usize, Vec<ScaleRun>)]) {
    if steps.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Scale: one stage with N Deployments\n\n`tagship deploy --config tagship.toml --version vX`, \
         one stage whose `workloads` lists N Deployments (each 2 replicas) in one namespace of \
         `local-1`; after one warm-up run. \"Cluster\" is from the start of tagship to the moment \
         the benchmark's watch saw the last Deployment complete; \"beyond\" is tagship's exit after \
         that moment.\n"
    );
    write_runs(out, "N", steps);
    if let (Some(one), Some(fifty)) = (cpu_of(steps, 1), cpu_of(steps, 50)) {
        let _ = writeln!(
            out,
            "\nGoal: 50 Deployments cost tagship <= 2x one (CPU, medians): {:.2}x, {}.",
            fifty / one,
            met(fifty / one <= 2.0)
        );
    }
    write_floor(out, steps);
    out.push('\n');
}

/// The [`StreamFloor`] of each step beside tagship's CPU.
fn write_floor(out: &mut String, steps: &[(usize, Vec<ScaleRun>)]) {
    let floors: Vec<(usize, Vec<(f64, StreamFloor)>)> = steps
        .iter()
        .map(|(n, runs)| {
            let f = runs
                .iter()
                .filter_map(|r| Some((millis(r.usage.cpu), r.floor?)))
                .collect();
            (*n, f)
        })
        .filter(|(_, f): &(usize, Vec<_>)| !f.is_empty())
        .collect();
    if floors.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nThe watch stream alone: a second process (`deploy-bench --stream-floor`) opened a \
         watch of the same namespace's Deployments before each deploy and counted what arrived \
         until the deploy was over, decoding nothing, with tagship's client stack (kube-rs, \
         rustls, HTTP/1.1, a current-thread runtime). Its CPU is from its watch being open to its \
         end; tagship's own watch opens after its applies, so it receives a little less.\n\n\
         | N | tagship CPU | bare watch CPU | events | stream | tagship CPU minus the bare watch |\n\
         |---|---|---|---|---|---|"
    );
    for (n, runs) in &floors {
        let tagship: Vec<f64> = runs.iter().map(|(t, _)| *t).collect();
        let cpu: Vec<f64> = runs.iter().map(|(_, f)| millis(f.cpu)).collect();
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let events: Vec<f64> = runs.iter().map(|(_, f)| f.events as f64).collect();
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let bytes: Vec<f64> = runs.iter().map(|(_, f)| f.bytes as f64 / 1e6).collect();
        let rest: Vec<f64> = runs.iter().map(|(t, f)| t - millis(f.cpu)).collect();
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} |",
            show(&tagship, ms1),
            show(&cpu, ms1),
            show(&events, |x| format!("{x:.0}")),
            show(&bytes, |x| format!("{x:.2} MB")),
            show(&rest, ms1),
        );
    }
}

/// The usual columns of a table of deploys, one row per step.
pub(super) fn write_runs(out: &mut String, first: &str, steps: &[(usize, Vec<ScaleRun>)]) {
    let _ = writeln!(
        out,
        "| {first} | runs | tagship CPU | peak RSS | wall | cluster finished | `rollout complete` after | exit beyond the cluster |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for (count, runs) in steps {
        let u: Vec<Usage> = runs.iter().map(|r| r.usage).collect();
        let _ = writeln!(
            out,
            "| {count} | {} | {} | {} | {} | {} | {} | {} |",
            runs.len(),
            show(&cpus(&u), ms1),
            show(&rss(&u), mb),
            show(&walls(&u), ms),
            show(&runs.iter().map(|r| r.cluster_ms).collect::<Vec<_>>(), ms),
            show(&runs.iter().map(|r| r.detect_ms).collect::<Vec<_>>(), ms1),
            show(&runs.iter().map(|r| r.after_ms).collect::<Vec<_>>(), ms1),
        );
    }
}

/// Median CPU (ms) of the step `n`.
fn cpu_of(steps: &[(usize, Vec<ScaleRun>)], n: usize) -> Option<f64> {
    steps
        .iter()
        .find(|(c, _)| *c == n)
        .map(|(_, r)| median(&r.iter().map(|r| millis(r.usage.cpu)).collect::<Vec<_>>()))
}

pub(super) fn write_clusters(out: &mut String, steps: &[(usize, Vec<ScaleRun>)]) {
    let _ = writeln!(
        out,
        "\n### Scale: one stage over 1 and 4 clusters\n\n`tagship deploy`, one stage with one \
         Deployment (2 replicas) whose `clusters` lists 1 or 4 contexts of the environment (each \
         its own kube-apiserver); the cluster finished when the last of them did.\n"
    );
    write_runs(out, "clusters", steps);
    if let (Some(one), Some(four)) = (cpu_of(steps, 1), cpu_of(steps, 4)) {
        let _ = writeln!(
            out,
            "\n4 clusters cost tagship {:.2}x the CPU of one (medians).\n",
            four / one
        );
    }
}

pub(super) fn write_stages(out: &mut String, steps: &[(usize, Vec<ScaleRun>)]) {
    let _ = writeln!(
        out,
        "\n### Scale: a run of 1 and of 10 stages\n\n`tagship deploy`, N stages in one \
         environment, one Deployment each, run in order. tagship's overhead is its wall time less \
         the cluster's own rollout time summed over the stages (each from the watch's first sight \
         of the new image to its complete rollout).\n"
    );
    write_runs(out, "stages", steps);
    let overhead = |n: usize| {
        steps.iter().find(|(c, _)| *c == n).map(|(_, runs)| {
            median(
                &runs
                    .iter()
                    .map(|r| millis(r.usage.wall) - r.rollout_sum_ms)
                    .collect::<Vec<_>>(),
            )
        })
    };
    if let (Some(one), Some(ten)) = (overhead(1), overhead(10)) {
        let per_stage = (ten - one) / 9.0;
        let _ = writeln!(
            out,
            "\ntagship's wall time beyond the cluster's rollouts (medians): 1 stage {one:.0} ms, \
             10 stages {ten:.0} ms; per stage added {per_stage:.1} ms (goal <= 100 ms: {}); \
             10 stages / 10 = {:.1} ms.\n",
            met(per_stage <= 100.0),
            ten / 10.0
        );
    }
}

pub(super) fn write_plugins(out: &mut String, runs: &[ScaleRun], requests: usize) {
    let _ = writeln!(
        out,
        "\n### Memory: a full deploy with six plugins loaded\n\n`tagship deploy`, one stage, one \
         Deployment; plugins `prometheus-health` (the environment's Prometheus), `http-health` and \
         `rails-compat` as pre-checks, the first two also in a 3 s bake (interval 1 s), and \
         `webhook-notify`, `slack-notify` and `gitlab-notify` told every event; all but the first \
         talk to a loopback sink of the benchmark, which answered {requests} requests in all.\n"
    );
    write_runs(out, "plugins", &[(6, runs.to_vec())]);
    let peak = rss(&runs.iter().map(|r| r.usage).collect::<Vec<_>>())
        .into_iter()
        .fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "\nGoal: peak RSS <= 60 MB: max {peak:.1} MB, {}.\n",
        met(peak <= 60.0 && peak > 0.0)
    );
}

pub(super) fn write_idle(out: &mut String, usages: &[Usage]) {
    let _ = writeln!(
        out,
        "\n### An idle re-run\n\n`tagship deploy` of the version already live (one stage, one \
         Deployment): it reads, finds nothing to change, and exits.\n\n\
         | runs | wall | CPU | peak RSS |\n|---|---|---|---|\n| {} | {} | {} | {} |\n",
        usages.len(),
        show(&walls(usages), ms1),
        show(&cpus(usages), ms1),
        show(&rss(usages), mb),
    );
}

pub(super) fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
