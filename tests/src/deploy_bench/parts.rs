//! The parts of the benchmark ([`super::PARTS`]), each a method of [`Bench`] that deploys and
//! measures; [`super::markdown`] writes their tables.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::markdown::{mb, met, ms1, show, write_runs};
use super::place::{Layout, Place, Sink, path_str};
use super::process::{Usage, run_timed};
use super::stats::{millis, rss, signed_ms, walls};
use super::watch::{CompletionWatch, FloorChild, StreamFloor};
use super::{Bench, IMAGE};
use crate::harness::unique_word;

/// One kubectl/tagship pair.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Pair {
    pub(super) kubectl: Usage,
    pub(super) tagship: Usage,
    /// tagship's "rollout complete" line minus the watch's completion, ms.
    pub(super) tagship_detect_ms: f64,
    /// kubectl's "successfully rolled out" line minus the watch's completion, ms.
    pub(super) kubectl_detect_ms: f64,
    /// tagship's exit minus the watch's completion, ms.
    pub(super) tagship_after_ms: f64,
    /// `kubectl rollout status`'s exit minus the watch's completion, ms.
    pub(super) kubectl_after_ms: f64,
}

/// One scale run.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ScaleRun {
    pub(super) usage: Usage,
    /// tagship's `rollout complete` line after the cluster finished, ms.
    pub(super) detect_ms: f64,
    /// tagship's exit after the cluster finished, ms.
    pub(super) after_ms: f64,
    /// From tagship's start to the cluster finishing, ms.
    pub(super) cluster_ms: f64,
    /// Sum over the Deployments (and clusters) of the cluster's own rollout time, from the first
    /// sight of the new image to its complete rollout, ms.
    pub(super) rollout_sum_ms: f64,
    /// What bare watches of the namespace (one per cluster) used over the same deploy.
    pub(super) floor: Option<StreamFloor>,
}

impl Bench {
    pub(super) async fn pairs(&self) -> anyhow::Result<Vec<Pair>> {
        let k = Place::create(&self.env, "kubectl", 1, true, 1).await?;
        let t = Place::create(&self.env, "tagship", 1, false, 1).await?;
        let config = t.write_config(&self.env)?;
        let name = &k.names[0];
        let mut pairs = Vec::new();
        for i in 0..=self.settings.pairs {
            let version = format!("v1.0.{}", i + 1);
            let tag = format!("{version}-gitlab");
            let image = format!("{IMAGE}:{tag}");
            eprintln!(
                "deploy-bench: pair {i} of {} ({version}){}",
                self.settings.pairs,
                if i == 0 { ", warm-up" } else { "" }
            );
            // A: kubectl apply --server-side, then kubectl rollout status.
            let manifest = k.write_manifest(&tag)?;
            let watch =
                CompletionWatch::start(self.env.client.clone(), &k.ns.name, image.clone()).await?;
            let apply = run_timed(
                &self.kubectl,
                &self.kube_args(&["apply", "--server-side", "-f", path_str(&manifest)?])?,
                &[],
            )?;
            if apply.code != 0 {
                bail!("kubectl apply failed:\n{}", apply.said());
            }
            let target = format!("deployment/{name}");
            let status = run_timed(
                &self.kubectl,
                &self.kube_args(&[
                    "rollout",
                    "status",
                    &target,
                    "-n",
                    &k.ns.name,
                    "--timeout=120s",
                ])?,
                &[],
            )?;
            if status.code != 0 {
                bail!("kubectl rollout status failed:\n{}", status.said());
            }
            let k_done = watch.finished(&k.names).await?;
            drop(watch);
            let kubectl = Usage {
                wall: apply.usage.wall + status.usage.wall,
                cpu: apply.usage.cpu + status.usage.cpu,
                rss_kib: apply.usage.rss_kib.max(status.usage.rss_kib),
            };
            let kubectl_detect_ms = status
                .line_at("successfully rolled out")
                .map_or(f64::NAN, |at| signed_ms(at, k_done));
            // B: tagship deploy.
            let watch = CompletionWatch::start(self.env.client.clone(), &t.ns.name, image).await?;
            let deploy = self.tagship(&[
                "deploy",
                "--config",
                path_str(&config)?,
                "--version",
                &version,
            ])?;
            if deploy.code != 0 {
                bail!("tagship deploy failed:\n{}", deploy.said());
            }
            let t_done = watch.finished(&t.names).await?;
            drop(watch);
            let pair = Pair {
                kubectl,
                tagship: deploy.usage,
                tagship_detect_ms: deploy
                    .line_at("rollout complete")
                    .map_or(f64::NAN, |at| signed_ms(at, t_done)),
                kubectl_detect_ms,
                tagship_after_ms: signed_ms(deploy.ended, t_done),
                kubectl_after_ms: signed_ms(status.ended, k_done),
            };
            if i > 0 {
                pairs.push(pair);
            }
        }
        Ok(pairs)
    }

    /// Deploys `config` of `place` `runs` times after a warm-up (versions v1.0.1, v1.0.2, ...),
    /// each timed against the benchmark's own watch in every cluster of the place; with
    /// `floor`, a [`StreamFloor`] child per cluster watches each deploy too.
    async fn deploys(
        &self,
        place: &Place,
        config: &Path,
        runs: usize,
        label: &str,
        envs: &[(&str, &str)],
        floor: bool,
    ) -> anyhow::Result<Vec<ScaleRun>> {
        let mut clients = Vec::new();
        for context in &place.contexts {
            clients.push(self.env.client_for(context).await?);
        }
        let mut out = Vec::new();
        for i in 0..=runs {
            let version = format!("v1.0.{}", i + 1);
            eprintln!(
                "deploy-bench: {label}, run {i} of {runs}{}",
                if i == 0 { ", warm-up" } else { "" }
            );
            let image = format!("{IMAGE}:{version}-gitlab");
            let mut watches = Vec::new();
            for client in &clients {
                watches.push(
                    CompletionWatch::start(client.clone(), &place.ns.name, image.clone()).await?,
                );
            }
            let floors = if floor {
                place
                    .contexts
                    .iter()
                    .map(|c| FloorChild::start(c, &place.ns.name))
                    .collect::<anyhow::Result<Vec<_>>>()?
            } else {
                Vec::new()
            };
            let started = Instant::now();
            let deploy = self.tagship_with(
                &[
                    "deploy",
                    "--config",
                    path_str(config)?,
                    "--version",
                    &version,
                ],
                envs,
            )?;
            if deploy.code != 0 {
                bail!("tagship deploy failed:\n{}", deploy.said());
            }
            let mut done = started;
            let mut rollouts = Vec::new();
            for watch in &watches {
                done = done.max(watch.finished(&place.names).await?);
                rollouts.extend(watch.rollout_ms(&place.names));
            }
            let mut seen = None;
            for child in floors {
                let one = child.finish()?;
                let sum = seen.get_or_insert_with(StreamFloor::default);
                sum.cpu += one.cpu;
                sum.events += one.events;
                sum.bytes += one.bytes;
            }
            if i > 0 {
                out.push(ScaleRun {
                    usage: deploy.usage,
                    // The last stage's line: the cluster finished with the last stage.
                    detect_ms: deploy
                        .last_line_at("rollout complete")
                        .map_or(f64::NAN, |at| signed_ms(at, done)),
                    after_ms: signed_ms(deploy.ended, done),
                    cluster_ms: signed_ms(done, started),
                    rollout_sum_ms: rollouts.iter().sum(),
                    floor: seen,
                });
            }
        }
        Ok(out)
    }

    /// For each of `counts`, a place laid out by `shape(count)` (Deployments, clusters, layout),
    /// deployed [`Settings::scale_runs`] times after a warm-up.
    async fn steps(
        &self,
        part: &str,
        counts: &[usize],
        shape: fn(usize) -> (usize, usize, Layout),
    ) -> anyhow::Result<Vec<(usize, Vec<ScaleRun>)>> {
        let mut steps = Vec::new();
        for &count in counts {
            let (deployments, clusters, layout) = shape(count);
            let place = Place::create(
                &self.env,
                &format!("{part}{count}"),
                deployments,
                false,
                clusters,
            )
            .await?;
            let config = place.write_config_as(&self.env, layout, None)?;
            let label = format!("{part} {count}");
            // The scale part also measures what receiving its watch streams costs by itself.
            let floor = part == "scale";
            let runs = self
                .deploys(
                    &place,
                    &config,
                    self.settings.scale_runs,
                    &label,
                    &[],
                    floor,
                )
                .await?;
            steps.push((count, runs));
        }
        Ok(steps)
    }

    /// One stage with N Deployments.
    pub(super) async fn scale(&self) -> anyhow::Result<Vec<(usize, Vec<ScaleRun>)>> {
        self.steps("scale", &self.settings.scale_sizes, |n| {
            (n, 1, Layout::OneStage)
        })
        .await
    }

    /// One stage with one Deployment over 1 and over 4 clusters.
    pub(super) async fn clusters(&self) -> anyhow::Result<Vec<(usize, Vec<ScaleRun>)>> {
        self.steps("clusters", &[1, 4], |n| (1, n, Layout::OneStage))
            .await
    }

    /// A run of 1 and of 10 stages, one Deployment each.
    pub(super) async fn stages(&self) -> anyhow::Result<Vec<(usize, Vec<ScaleRun>)>> {
        self.steps("stages", &[1, 10], |n| (n, 1, Layout::StagePerDeployment))
            .await
    }

    /// A deploy with six plugins loaded (two health checks and a compat check as pre-checks, the
    /// health checks in a 3 s bake, three notifiers), talking to Prometheus and to a loopback
    /// sink; the requests the sink received.
    pub(super) async fn plugins(&self) -> anyhow::Result<(Vec<ScaleRun>, usize)> {
        let sink = Sink::start().await?;
        let place = Place::create(&self.env, "plugins", 1, false, 1).await?;
        let config = place.write_config_as(&self.env, Layout::SixPlugins, Some(&sink.address))?;
        let slack = format!("http://{}/slack", sink.address);
        let runs = self
            .deploys(
                &place,
                &config,
                self.settings.scale_runs,
                "six plugins",
                &[
                    ("SLACK_WEBHOOK_URL", &slack),
                    ("GITLAB_TOKEN", "bench-token"),
                ],
                false,
            )
            .await?;
        Ok((runs, sink.requests()))
    }

    /// Plugins in Python and JavaScript ([`crate::interpreted_bench`]), then a deploy baked by
    /// the Python health check, precompiled: what a deploy with one costs.
    pub(super) async fn interpreted(&self, out: &mut String) -> anyhow::Result<()> {
        use crate::interpreted_bench as ib;
        let Some(dir) = &self.settings.examples else {
            out.push_str(
                "\n### Plugins in Python and JavaScript\n\nSkipped: no `--examples DIR` \
                 (tests/plugins/build-examples DIR builds them).\n",
            );
            return Ok(());
        };
        let examples = ib::examples(dir)?;
        let scratch = std::env::temp_dir().join(format!("deploy-bench-interp-{}", unique_word()));
        std::fs::create_dir_all(&scratch)?;
        let url = format!("{}/-/healthy", self.env.prometheus_url);
        let grant = self
            .env
            .prometheus_url
            .trim_start_matches("http://")
            .to_owned();
        let mut rows = Vec::new();
        for example in &examples {
            for compiler in ib::COMPILERS {
                let row = ib::measure(
                    &self.settings.tagship,
                    example,
                    compiler,
                    3,
                    self.settings.scale_runs.max(5),
                    (&url, &grant),
                    &scratch,
                )?;
                let no_choice = row.compiler != compiler;
                rows.push(row);
                if no_choice {
                    break; // a tagship before the compiler choice: one row, Cranelift's
                }
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
        ib::write(out, &rows);

        let python = dir.join("python-health.wasm");
        if python.is_file() {
            let place = Place::create(&self.env, "interp", 1, false, 1).await?;
            let config =
                place.write_config_as(&self.env, Layout::CheckBake, Some(path_str(&python)?))?;
            let precompiled =
                self.tagship(&["plugin", "precompile", "--config", path_str(&config)?])?;
            if precompiled.code != 0 {
                bail!("plugin precompile --config failed:\n{}", precompiled.said());
            }
            let runs = self
                .deploys(
                    &place,
                    &config,
                    self.settings.scale_runs,
                    "python bake",
                    &[],
                    false,
                )
                .await?;
            let _ = writeln!(
                out,
                "\n#### A deploy baked by the Python health check\n\n`tagship deploy`, one stage, \
                 one Deployment, a 3 s bake (interval 1 s) of `python-health.wasm` against \
                 Prometheus, the default compiler choice, precompiled by `tagship plugin \
                 precompile --config` (so the deploy compiles nothing).\n"
            );
            write_runs(out, "checks", &[(1, runs.clone())]);
            let peak = rss(&runs.iter().map(|r| r.usage).collect::<Vec<_>>())
                .into_iter()
                .fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "\nGoal: peak RSS of a deploy with one Python plugin <= 80 MB: max {peak:.1} MB, {}.\n",
                met(peak <= 80.0 && peak > 0.0)
            );
        }
        Ok(())
    }

    /// Re-runs of a deploy whose version is already live everywhere: nothing to change.
    pub(super) async fn idle(&self) -> anyhow::Result<Vec<Usage>> {
        let place = Place::create(&self.env, "idle", 1, false, 1).await?;
        let config = place.write_config(&self.env)?;
        self.deploys(&place, &config, 0, "idle re-run: first deploy", &[], false)
            .await?;
        let mut usages = Vec::new();
        for i in 0..=self.settings.scale_runs {
            eprintln!("deploy-bench: idle re-run {i}");
            let deploy = self.tagship(&[
                "deploy",
                "--config",
                path_str(&config)?,
                "--version",
                "v1.0.1",
            ])?;
            if deploy.code != 0 {
                bail!("tagship deploy (re-run) failed:\n{}", deploy.said());
            }
            usages.push(deploy.usage);
        }
        Ok(usages)
    }

    pub(super) async fn startup(&self) -> anyhow::Result<String> {
        let place = Place::create(&self.env, "status", 1, false, 1).await?;
        let config = place.write_config(&self.env)?;
        let mut out = String::from(
            "### Start-up: whole processes\n\n| command | runs | wall | CPU | peak RSS |\n|---|---|---|---|---|\n",
        );
        let commands: [(&str, Option<Vec<&str>>); 3] = [
            (
                "/bin/true (the floor: fork, exec, /usr/bin/time, reap)",
                None,
            ),
            ("tagship --version", Some(vec!["--version"])),
            (
                "tagship status --no-health --config tagship.toml (one stage, one Deployment)",
                Some(vec![
                    "status",
                    "--no-health",
                    "--config",
                    path_str(&config)?,
                ]),
            ),
        ];
        for (label, args) in commands {
            let mut usages = Vec::new();
            for _ in 0..self.settings.startup_runs {
                let ran = match &args {
                    Some(args) => self.tagship(args)?,
                    None => run_timed(Path::new("/bin/true"), &[], &[])?,
                };
                if ran.code != 0 {
                    bail!("`{label}` failed:\n{}", ran.said());
                }
                usages.push(ran.usage);
            }
            let total_cpu: Duration = usages.iter().map(|u| u.cpu).sum();
            let _ = writeln!(
                out,
                "| `{label}` | {} | {} | {:.1} ms per run ({} ms in all) | {} |",
                usages.len(),
                show(&walls(&usages), ms1),
                millis(total_cpu) / f64::from(u32::try_from(usages.len()).unwrap_or(1)),
                total_cpu.as_millis(),
                show(&rss(&usages), mb),
            );
        }
        Ok(out)
    }
}
