//! `tagship check-compat --app-version V [--stage S]...`: is the registry live in each stage
//! compatible with app version V? The pre-check the app's auto-deploy runs before deploying.
//!
//! Each stage's compat plugins (the compat-check plugins in its `pre_checks`) run against every
//! registry version live in the stage (read from its clusters) with `app_version` = V. Fails
//! closed: a check that cannot decide, a stage that cannot be read, or a workload whose version
//! cannot be read from its image tag is "undecided" (exit 3), never "compatible".

use std::collections::BTreeSet;
use std::fmt::Write as _;

use clap::Args;

use super::common::ConfigFile;
use serde_json::json;

use super::{CommandError, OutputFormat, common};
use crate::exit::Outcome;
use crate::lifecycle::ports::{CheckOutcome, Checks as _, StageLive, Workloads as _};
use crate::lifecycle::{StagePlan, context_for};
use crate::plugins::{PluginHost, PluginKind};
use crate::terminal;
use crate::version::{TagTemplate, image_tag};
use crate::wiring::{KubePorts, PluginPorts, RunOptions, holder, plan};

/// `check-compat` arguments.
#[derive(Debug, Args)]
pub struct CheckCompatArgs {
    /// The application version about to be deployed, e.g. `v17.5.0`.
    #[arg(long, env = "TAGSHIP_APP_VERSION", value_name = "VERSION")]
    pub app_version: String,

    /// Only these stages (repeatable). Default: every stage with a compat plugin.
    #[arg(long, value_name = "STAGE")]
    pub stage: Vec<String>,

    /// Exit 0 (with a warning) when a check cannot decide, instead of 3. Fail-open: use only
    /// when a broken version source must not stop the app's deploys.
    #[arg(long)]
    pub allow_undecided: bool,

    #[command(flatten)]
    pub config: ConfigFile,

    /// How to print.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// A stage's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Compatible,
    Undecided,
    Incompatible,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Compatible => "compatible",
            Verdict::Undecided => "undecided",
            Verdict::Incompatible => "incompatible",
        }
    }
}

struct StageResult {
    stage: String,
    versions: Vec<String>,
    verdict: Verdict,
    reasons: Vec<String>,
}

/// Runs `check-compat`.
pub async fn run(args: CheckCompatArgs) -> Result<Outcome, CommandError> {
    let config = args.config.load()?;
    common::check_credentials(&config)?;
    for stage in &args.stage {
        common::require_stage(&config, stage)?;
    }
    let app_version = common::app_version(&args.app_version, "--app-version")?;
    let options = RunOptions {
        deploy_id: format!("{}-check-compat-{app_version}", config.component.name),
        pipeline_url: std::env::var("CI_PIPELINE_URL").ok(),
        app_version: Some(app_version.clone()),
        ..RunOptions::default()
    };
    let plan = plan(
        &config,
        common::parse_version("v0.0.0", "placeholder")?,
        &options,
    );
    let host = PluginHost::new();
    let plugins = PluginPorts::new(&config, host);
    plugins
        .preload()
        .map_err(|e| CommandError::new(e.outcome(), e))?;
    let cluster = KubePorts::new(&config, holder("check-compat".into()));

    let mut selected = Vec::new();
    for stage in &plan.stages {
        if !args.stage.is_empty() && !args.stage.contains(&stage.name) {
            continue;
        }
        let mut checks = Vec::new();
        for name in &stage.pre_checks {
            let kind = plugins
                .kind_of(name, &stage.name)
                .map_err(|e| CommandError::new(e.outcome(), e))?;
            if kind == PluginKind::CompatCheck {
                checks.push(name.clone());
            }
        }
        if checks.is_empty() {
            if !args.stage.is_empty() {
                return Err(CommandError::usage(anyhow::anyhow!(
                    "stage `{}` has no compat plugin in its `pre_checks` in {}",
                    stage.name,
                    args.config.path.display()
                )));
            }
            continue;
        }
        selected.push((stage, checks));
    }
    if selected.is_empty() {
        return Err(CommandError::usage(anyhow::anyhow!(
            "no stage of {} has a compat plugin: add a compat-check plugin (e.g. `builtin:rails-compat`) to a stage's `pre_checks`",
            args.config.path.display()
        )));
    }

    let mut results = Vec::new();
    for (stage, checks) in selected {
        results.push(
            check_stage(
                &plan,
                stage,
                &checks,
                &cluster,
                &plugins,
                &app_version,
                &config.component.tag,
            )
            .await,
        );
    }
    print(&args, &app_version, &results);
    let worst = results
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Compatible);
    Ok(match worst {
        Verdict::Compatible => Outcome::Done,
        Verdict::Incompatible => Outcome::Failed,
        Verdict::Undecided if args.allow_undecided => {
            terminal::stderr_line(
                "warning: compatibility undecided, passing anyway as --allow-undecided asks",
            );
            Outcome::Done
        }
        Verdict::Undecided => Outcome::Blocked,
    })
}

async fn check_stage(
    plan: &crate::lifecycle::Plan,
    stage: &StagePlan,
    checks: &[String],
    cluster: &KubePorts<'_>,
    plugins: &PluginPorts<'_>,
    app_version: &str,
    tag: &TagTemplate,
) -> StageResult {
    let undecided = |reason: String| StageResult {
        stage: stage.name.clone(),
        versions: Vec::new(),
        verdict: Verdict::Undecided,
        reasons: vec![reason],
    };
    let live = match cluster.live(stage).await {
        Ok(live) => live,
        Err(e) => return undecided(format!("cannot read the registry version live: {e}")),
    };
    if live.workloads.is_empty() {
        return undecided("no workload of the stage runs a registry version tagship knows".into());
    }
    let versions: BTreeSet<_> = live
        .workloads
        .iter()
        .filter_map(|w| w.version.clone())
        .collect();
    // A workload whose version cannot be read may run anything: the stage cannot be called
    // compatible for it, whatever the others run (fail closed).
    let mut verdict = Verdict::Compatible;
    let mut reasons = Vec::new();
    for reason in unreadable_versions(&live, tag) {
        verdict = Verdict::Undecided;
        reasons.push(reason);
    }
    for version in &versions {
        let mut ctx = context_for(plan, Some(stage), None, &live);
        ctx.version = version.to_string();
        ctx.app_version = Some(app_version.to_owned());
        for result in plugins.run(stage, checks, &ctx).await {
            let (v, why) = match result.outcome {
                CheckOutcome::Pass => (Verdict::Compatible, None),
                CheckOutcome::Fail(why) => (Verdict::Incompatible, Some(why)),
                CheckOutcome::Unknown(why) | CheckOutcome::Errored(why) => {
                    (Verdict::Undecided, Some(why))
                }
            };
            verdict = verdict.max(v);
            if let Some(why) = why {
                reasons.push(format!("{} ({version}): {why}", result.check));
            }
        }
    }
    StageResult {
        stage: stage.name.clone(),
        versions: versions.iter().map(ToString::to_string).collect(),
        verdict,
        reasons,
    }
}

/// One reason per workload of `live` whose registry version cannot be read: its image has no
/// tag, or a tag that is not a version by the configuration's tag template.
fn unreadable_versions(live: &StageLive, tag: &TagTemplate) -> Vec<String> {
    live.workloads
        .iter()
        .filter(|w| w.version.is_none())
        .map(|w| {
            let why = match image_tag(&w.image) {
                None => "has no tag".to_owned(),
                Some(found) => {
                    format!("has tag `{found}`, which is not a version by the tag template `{tag}`")
                }
            };
            format!(
                "cannot read the registry version of `{}` in cluster `{}`: its image `{}` {why}, so its compatibility cannot be checked",
                w.name, w.cluster, w.image
            )
        })
        .collect()
}

fn print(args: &CheckCompatArgs, app_version: &str, results: &[StageResult]) {
    let worst = results.iter().map(|r| r.verdict).max();
    match args.output {
        OutputFormat::Json => terminal::stdout_json(&json!({
            "app_version": app_version,
            "verdict": worst.map(Verdict::word),
            "stages": results.iter().map(|r| json!({
                "stage": r.stage,
                "registry_versions": r.versions,
                "verdict": r.verdict.word(),
                "reasons": r.reasons,
            })).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let mut text = String::new();
            for r in results {
                let live = if r.versions.is_empty() {
                    "unknown".to_owned()
                } else {
                    r.versions.join(", ")
                };
                let _ = write!(
                    text,
                    "{}: {} (registry {live}, app {app_version})",
                    r.stage,
                    r.verdict.word()
                );
                for reason in &r.reasons {
                    let _ = write!(text, "\n    {reason}");
                }
                text.push('\n');
            }
            terminal::stdout_line(text.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::ports::WorkloadLive;

    fn workload(cluster: &str, image: &str, tag: &TagTemplate) -> WorkloadLive {
        WorkloadLive {
            cluster: cluster.into(),
            namespace: "gitlab".into(),
            name: "gitlab-registry/registry".into(),
            image: image.into(),
            version: image_tag(image).and_then(|t| tag.parse_tag(t)),
            previous: None,
            complete: true,
            paused: false,
            drift: None,
        }
    }

    #[test]
    fn every_workload_whose_version_cannot_be_read_is_named_with_its_cluster() {
        let tag: TagTemplate = "{{version}}-gitlab".parse().unwrap();
        let cases = [
            ("r.example.com/registry:v2.0.0-gitlab", None),
            (
                "r.example.com/registry:latest",
                Some(
                    "cannot read the registry version of `gitlab-registry/registry` in cluster `local-2`: its image `r.example.com/registry:latest` has tag `latest`, which is not a version by the tag template `{{version}}-gitlab`, so its compatibility cannot be checked",
                ),
            ),
            (
                "r.example.com/registry@sha256:0123",
                Some(
                    "cannot read the registry version of `gitlab-registry/registry` in cluster `local-2`: its image `r.example.com/registry@sha256:0123` has no tag, so its compatibility cannot be checked",
                ),
            ),
        ];
        for (image, reason) in cases {
            let live = StageLive {
                workloads: vec![
                    workload("local-1", "r.example.com/registry:v2.0.0-gitlab", &tag),
                    workload("local-2", image, &tag),
                ],
            };
            let reasons = unreadable_versions(&live, &tag);
            assert_eq!(reasons, reason.into_iter().collect::<Vec<_>>(), "{image}");
        }
    }
}
