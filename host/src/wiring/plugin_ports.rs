//! `PluginPorts`: the `Checks` port and the delivery of notifications ([`Deliver`]; which
//! notifiers hear what is the lifecycle's `notify`), by plugins loaded once per (plugin, stage).

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::join_all;

use crate::config::{self, Config};
use crate::context::{DeployContext, Event};
use crate::lifecycle::StagePlan;
use crate::lifecycle::notify::Deliver;
use crate::lifecycle::ports::{CheckOutcome, CheckResult, Checks};
use crate::plugins::{
    Grants, Limits, Plugin, PluginError, PluginHost, PluginKind, PluginSpec, Source,
};
use crate::verdict::HealthStatus;

/// Serves `Checks` and `Notify` with plugins loaded once per (plugin, stage).
pub struct PluginPorts<'a> {
    config: &'a Config,
    host: PluginHost,
    loaded: Mutex<HashMap<(String, String), std::sync::Arc<Plugin>>>,
}

impl<'a> PluginPorts<'a> {
    /// Ports loading plugins of `config` into `host`.
    pub fn new(config: &'a Config, host: PluginHost) -> Self {
        PluginPorts {
            config,
            host,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Loads every plugin the configuration names, so a plugin that cannot load is a usage error
    /// before anything changes.
    pub fn preload(&self) -> Result<(), PluginError> {
        for stage in &self.config.stages {
            let uses = stage
                .pre_checks
                .iter()
                .map(|n| {
                    (
                        n,
                        "pre-check",
                        &[PluginKind::HealthCheck, PluginKind::CompatCheck][..],
                    )
                })
                .chain(
                    stage
                        .bake
                        .iter()
                        .flat_map(|b| &b.checks)
                        .map(|n| (n, "bake check", &[PluginKind::HealthCheck][..])),
                )
                .chain(
                    stage
                        .notify
                        .iter()
                        .map(|n| (n, "notifier", &[PluginKind::Notifier][..])),
                );
            for (name, role, kinds) in uses {
                let plugin = self.plugin(name, &stage.name)?;
                let hears_events = self.config.plugin(name).is_some_and(|p| p.events.is_some());
                if hears_events && plugin.kind() != PluginKind::Notifier {
                    return Err(PluginError::Settings {
                        plugin: name.clone(),
                        reason: format!(
                            "`events` is for notifiers, and this is a {} plugin; remove it",
                            plugin.kind().world()
                        ),
                    });
                }
                if !kinds.contains(&plugin.kind()) {
                    return Err(PluginError::WrongKind {
                        plugin: name.clone(),
                        actual: plugin.kind().world(),
                        expected: role,
                    });
                }
            }
        }
        Ok(())
    }

    /// The kind of plugin `name` (loading it for `stage` if needed).
    pub fn kind_of(&self, name: &str, stage: &str) -> Result<PluginKind, PluginError> {
        Ok(self.plugin(name, stage)?.kind())
    }

    fn plugin(&self, name: &str, stage: &str) -> Result<std::sync::Arc<Plugin>, PluginError> {
        let key = (name.to_owned(), stage.to_owned());
        if let Some(plugin) = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Ok(plugin.clone());
        }
        let settings = self
            .config
            .plugin(name)
            .ok_or_else(|| PluginError::Settings {
                plugin: name.to_owned(),
                reason: "not defined under [plugins]".into(),
            })?;
        let stage_config = self
            .config
            .stage(stage)
            .and_then(|s| self.config.plugin_settings(s, name))
            .unwrap_or_default();
        let mut grants = Grants::none()
            .with_hosts(&settings.allow_hosts)
            .map_err(|reason| PluginError::Settings {
                plugin: name.to_owned(),
                reason,
            })?;
        for secret in &settings.secrets {
            grants = grants.with_secret(secret, std::env::var(secret).ok());
        }
        let defaults = Limits::default();
        let limits = Limits {
            memory_bytes: settings
                .limits
                .memory_mib
                .map_or(defaults.memory_bytes, |m| (m as usize) << 20),
            cpu: settings.limits.cpu.unwrap_or(defaults.cpu),
            wall: settings.limits.wall.unwrap_or(defaults.wall),
            ..defaults
        };
        let source = match &settings.source {
            config::PluginSource::Builtin(n) => Source::Builtin(n.clone()),
            config::PluginSource::File(p) => Source::File(p.clone()),
        };
        let plugin = std::sync::Arc::new(self.host.load(PluginSpec {
            name: name.to_owned(),
            source,
            config: stage_config,
            grants,
            limits,
        })?);
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, plugin.clone());
        Ok(plugin)
    }
}

impl Checks for PluginPorts<'_> {
    async fn run(
        &self,
        stage: &StagePlan,
        checks: &[String],
        ctx: &DeployContext,
    ) -> Vec<CheckResult> {
        let runs = checks.iter().map(|name| async move {
            let outcome = match self.plugin(name, &stage.name) {
                Err(e) => CheckOutcome::Errored(e.to_string()),
                Ok(plugin) => match plugin.kind() {
                    PluginKind::HealthCheck => match plugin.check_health(ctx).await {
                        Ok(report) => match report.status {
                            HealthStatus::Healthy => CheckOutcome::Pass,
                            HealthStatus::Unhealthy => CheckOutcome::Fail(report.reason),
                            HealthStatus::Unknown => CheckOutcome::Unknown(report.reason),
                        },
                        Err(e) => CheckOutcome::Errored(e.to_string()),
                    },
                    PluginKind::CompatCheck => match plugin.check_compat(ctx).await {
                        Ok(report) if report.compatible => CheckOutcome::Pass,
                        Ok(report) => CheckOutcome::Fail(report.reasons.join("; ")),
                        Err(e) => CheckOutcome::Errored(e.to_string()),
                    },
                    PluginKind::Notifier => {
                        CheckOutcome::Errored(format!("plugin `{name}` is a notifier, not a check"))
                    }
                },
            };
            CheckResult {
                check: name.clone(),
                cluster: None,
                outcome,
            }
        });
        join_all(runs).await
    }
}

impl Deliver for PluginPorts<'_> {
    async fn deliver(&self, notifier: &str, stage: Option<&StagePlan>, event: &Event) {
        // A deploy-level event loads the notifier as the first stage configures it.
        let context_stage = match stage {
            Some(stage) => stage.name.clone(),
            None => self
                .config
                .stages
                .first()
                .map(|s| s.name.clone())
                .unwrap_or_default(),
        };
        match self.plugin(notifier, &context_stage) {
            Ok(plugin) => {
                if let Err(e) = plugin.notify(event).await {
                    tracing::warn!("notifier `{notifier}` failed (the deploy goes on): {e}");
                }
            }
            Err(e) => tracing::warn!("notifier `{notifier}` could not be loaded: {e}"),
        }
    }
}
