//! Wires a deploy: the configuration becomes a [`Plan`], and the lifecycle's ports are served by
//! the real adapters: [`crate::cluster::KubeCluster`] for `Cluster`, [`crate::plugins::PluginHost`]
//! for `Checks` and the delivery of notifications (`Deliver`).
//!
//! This file translates the configuration into a plan; the ports have a file each: `kube`
//! (`KubePorts`, the `Cluster` port) with `containers` (which containers tagship changes, and
//! drift) and `migration_jobs` (the Jobs it builds), `plugin_ports` (`Checks`, `Deliver`), and
//! `identity` (who this run is, for the lock and the history).
//!
//! Architecture invariant: decisions stay in `lifecycle`; this module only translates (config →
//! plan, version ↔ image, port calls → adapter calls) and never decides what a deploy does.

use std::collections::BTreeSet;

use crate::config::{self, Config, OnUnknown};
use crate::lifecycle::{BakePlan, CommandLine, Gate, Plan, StagePlan, UnknownPolicy};
use crate::version::Version;

/// Annotation: the component version tagship applied.
pub const ANNOTATION_VERSION: &str = "tagship.io/version";
/// Annotation: the version before it (what a rollback returns to).
pub const ANNOTATION_PREVIOUS: &str = "tagship.io/previous-version";
/// Annotation: the pipeline that applied it.
pub const ANNOTATION_PIPELINE: &str = "tagship.io/pipeline-url";
/// Annotation: who applied it.
pub const ANNOTATION_BY: &str = "tagship.io/deployed-by";
/// Annotation: when.
pub const ANNOTATION_AT: &str = "tagship.io/deployed-at";
/// Key of the post-deployment migration watermark in the environment's state.
pub const WATERMARK_KEY: &str = "post_migrated_version";

/// Options of a deploy run from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Manual stages approved.
    pub approve: BTreeSet<String>,
    /// Stop after this stage.
    pub until: Option<String>,
    /// Allow deploying below the live version.
    pub allow_downgrade: bool,
    /// Allow deploying below the post-deployment migration watermark.
    pub force: bool,
    /// Identifies the run.
    pub deploy_id: String,
    /// The pipeline running it.
    pub pipeline_url: Option<String>,
    /// The application's version for compat checks.
    pub app_version: Option<String>,
    /// The command line of the run, for the follow-up commands it prints.
    pub command: CommandLine,
}

/// Resolves the configuration into the lifecycle's plan.
pub fn plan(config: &Config, target: Version, options: &RunOptions) -> Plan {
    let post_stages = config.post_migration_stages();
    let environments = config.environments();
    let stages = config
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let env = environments.iter().find(|e| e.stages.contains(&i));
            StagePlan {
                name: s.name.clone(),
                environment: s.environment.clone(),
                gate: match s.gate {
                    config::Gate::Auto => Gate::Auto,
                    config::Gate::Manual => Gate::Manual,
                },
                first_of_environment: env.is_some_and(|e| e.stages.start == i),
                last_of_environment: env.is_some_and(|e| e.stages.end == i + 1),
                post_migrations_after: post_stages.contains(&i),
                pre_checks: s.pre_checks.clone(),
                bake: s.bake.as_ref().map(|b| BakePlan {
                    checks: b.checks.clone(),
                    duration: b.duration,
                    interval: b.interval,
                    initial_delay: b.initial_delay,
                    failure_limit: b.failure_limit,
                    consecutive_error_limit: b.consecutive_error_limit,
                    unknown: match b.unknown {
                        OnUnknown::Fail => UnknownPolicy::Fail,
                        OnUnknown::Pass => UnknownPolicy::Pass,
                        OnUnknown::Wait => UnknownPolicy::Wait,
                    },
                }),
                notify: s.notify.clone(),
            }
        })
        .collect();
    Plan {
        component: config.component.name.clone(),
        target,
        stages,
        approved: options.approve.clone(),
        until: options.until.clone(),
        downgrade: match (options.allow_downgrade, options.force) {
            (false, _) => crate::lifecycle::Downgrade::Refused,
            (true, false) => crate::lifecycle::Downgrade::Allowed,
            (true, true) => crate::lifecycle::Downgrade::BelowWatermark,
        },
        pre_migrations: config.migrations.pre.is_some(),
        post_migrations: config.migrations.post.is_some(),
        lock_wait: config.lock.wait,
        lock_ttl: config.lock.ttl,
        notifier_events: config
            .plugins
            .iter()
            .filter_map(|(name, p)| Some((name.clone(), p.events.clone()?)))
            .collect(),
        deploy_id: options.deploy_id.clone(),
        pipeline_url: options.pipeline_url.clone(),
        app_version: options.app_version.clone(),
        command: options.command.clone(),
    }
}

mod containers;
mod identity;
mod kube;
mod migration_jobs;
mod plugin_ports;

pub use identity::{default_holder, holder, holder_who};
pub use kube::KubePorts;
pub use plugin_ports::PluginPorts;
