//! `Plugin`: a loaded plugin, and each call in a fresh sandbox with its limits, whatever went
//! wrong turned into a `PluginError`; with the conversions to the WIT types.

use std::fmt;
use std::sync::Arc;

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::{compat, health, notifier, wit_types};
use super::sandbox::{PluginEnv, State};
use super::{PluginError, PluginKind, engine};
use crate::context::{DeployContext, Event, EventKind, WorkloadVersion};
use crate::verdict::{CompatReport, HealthReport, HealthStatus};

pub(super) enum Pre {
    Health(health::HealthCheckPre<State>),
    Notifier(notifier::NotifierPre<State>),
    Compat(compat::CompatCheckPre<State>),
}

/// A loaded plugin, ready to be called. Cheap to share; every call gets a fresh sandbox.
pub struct Plugin {
    pub(super) env: Arc<PluginEnv>,
    pub(super) kind: PluginKind,
    pub(super) engine: Engine,
    pub(super) pre: Pre,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.env.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's configured name.
    pub fn name(&self) -> &str {
        &self.env.name
    }

    /// Its kind.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// `text` from the plugin, made safe to show: its granted secrets redacted, control and
    /// bidi characters escaped onto one line.
    pub fn clean(&self, text: &str) -> String {
        self.env.redactor.clean(text)
    }

    fn wrong_kind(&self, expected: PluginKind) -> PluginError {
        PluginError::WrongKind {
            plugin: self.env.name.clone(),
            actual: self.kind.world(),
            expected: expected.world(),
        }
    }

    fn new_store(&self, ctx: &DeployContext) -> Store<State> {
        let mut store = Store::new(&self.engine, State::new(self.env.clone(), ctx));
        store.limiter(|state| &mut state.limiter);
        let limits = &self.env.limits;
        store.set_epoch_deadline(ticks(limits.cpu.min(limits.wall)));
        store.epoch_deadline_callback(move |mut cx| {
            // The epoch counts wall time. The wall limit is a stop wherever the guest is (a
            // guest that computes after a long wait is stopped too, not only one that waits);
            // the CPU limit counts the guest's own CPU time, which grows slower than the epoch.
            let state = cx.data_mut();
            let limits = &state.env.limits;
            let elapsed = state.started.elapsed();
            if elapsed >= limits.wall {
                state.wall_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            let used = state.cpu.used();
            if used >= limits.cpu {
                state.cpu_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            let next = limits
                .cpu
                .saturating_sub(used)
                .min(limits.wall.saturating_sub(elapsed));
            Ok(UpdateDeadline::Continue(ticks(next)))
        });
        store
    }

    /// Runs `call` in a fresh sandbox with the wall-clock limit, and turns whatever went wrong
    /// into a [`PluginError`].
    async fn run<R, F>(&self, ctx: &DeployContext, call: F) -> Result<R, PluginError>
    where
        F: AsyncFnOnce(&mut Store<State>) -> wasmtime::Result<R>,
    {
        let mut store = self.new_store(ctx);
        let limit = self.env.limits.wall;
        let meter = store.data().cpu.clone();
        let outcome = tokio::time::timeout(limit, meter.meter(call(&mut store))).await;
        let state = store.data_mut();
        let result = match outcome {
            Err(_elapsed) => Err(PluginError::WallTimeout {
                plugin: self.env.name.clone(),
                limit,
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.classify(state, &error)),
        };
        state.flush_logs();
        result
    }

    fn classify(&self, state: &State, error: &wasmtime::Error) -> PluginError {
        let plugin = self.env.name.clone();
        if let Some(asked) = state.limiter.refused {
            return PluginError::MemoryLimit {
                plugin,
                limit: self.env.limits.memory_bytes,
                asked,
            };
        }
        if state.wall_exceeded {
            return PluginError::WallTimeout {
                plugin,
                limit: self.env.limits.wall,
            };
        }
        if state.cpu_exceeded {
            return PluginError::CpuLimit {
                plugin,
                limit: self.env.limits.cpu,
            };
        }
        let text = format!("{error:#}");
        match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => PluginError::StackOverflow { plugin },
            // A Rust guest keeps its own stack in linear memory below its data; overflowing it
            // runs off the bottom of memory rather than hitting wasm's stack guard.
            Some(Trap::MemoryOutOfBounds) => PluginError::Trapped {
                plugin,
                trap: "out-of-bounds memory access (in a Rust guest usually a stack overflow from deep recursion)".into(),
            },
            Some(Trap::Interrupt) => PluginError::CpuLimit { plugin, limit: self.env.limits.cpu },
            Some(Trap::UnreachableCodeReached) => {
                let message = state.abort_message().unwrap_or_else(|| {
                    "it aborted (wasm `unreachable`) without a message or any output on stderr"
                        .into()
                });
                PluginError::Panicked { plugin, message }
            }
            Some(trap) => PluginError::Trapped { plugin, trap: trap.to_string() },
            None if text.contains("pooling") || text.contains("instance count") => {
                PluginError::Instantiate { plugin, reason: self.env.redactor.clean(&text) }
            }
            None => PluginError::Trapped { plugin, trap: self.env.redactor.clean(&text) },
        }
    }

    fn check_size(&self, size: usize) -> Result<(), PluginError> {
        let limit = self.env.limits.result_bytes;
        if size > limit {
            return Err(PluginError::ResultTooLarge {
                plugin: self.env.name.clone(),
                size,
                limit,
            });
        }
        Ok(())
    }

    fn returned(&self, message: &str) -> PluginError {
        PluginError::Returned {
            plugin: self.env.name.clone(),
            message: self.env.redactor.clean(message),
        }
    }

    /// Asks a health-check plugin about `ctx.stage` now.
    pub async fn check_health(&self, ctx: &DeployContext) -> Result<HealthReport, PluginError> {
        let Pre::Health(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::HealthCheck));
        };
        let wit_ctx = to_wit_context(ctx);
        let result = self
            .run(ctx, async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .tagship_plugin_health()
                    .call_check(&mut *store, &wit_ctx)
                    .await
            })
            .await?;
        match result {
            Ok(report) => {
                self.check_size(
                    encoded(&report.reason) + report.threshold.as_deref().map_or(0, encoded),
                )?;
                Ok(HealthReport {
                    status: match report.status {
                        wit_types::HealthStatus::Healthy => HealthStatus::Healthy,
                        wit_types::HealthStatus::Unhealthy => HealthStatus::Unhealthy,
                        wit_types::HealthStatus::Unknown => HealthStatus::Unknown,
                    },
                    value: report.value,
                    threshold: report.threshold.map(|t| self.clean(&t)),
                    reason: self.clean(&report.reason),
                })
            }
            Err(message) => {
                self.check_size(encoded(&message))?;
                Err(self.returned(&message))
            }
        }
    }

    /// Asks a compat-check plugin whether `ctx.version` fits `ctx.app_version`.
    pub async fn check_compat(&self, ctx: &DeployContext) -> Result<CompatReport, PluginError> {
        let Pre::Compat(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::CompatCheck));
        };
        let wit_ctx = to_wit_context(ctx);
        let result = self
            .run(ctx, async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .tagship_plugin_compat()
                    .call_check(&mut *store, &wit_ctx)
                    .await
            })
            .await?;
        match result {
            Ok(report) => {
                self.check_size(
                    LIST_BYTES + report.reasons.iter().map(|r| encoded(r)).sum::<usize>(),
                )?;
                Ok(CompatReport {
                    compatible: report.compatible,
                    reasons: report.reasons.iter().map(|r| self.clean(r)).collect(),
                })
            }
            Err(message) => {
                self.check_size(encoded(&message))?;
                Err(self.returned(&message))
            }
        }
    }

    /// Delivers one event through a notifier plugin.
    pub async fn notify(&self, event: &Event) -> Result<(), PluginError> {
        let Pre::Notifier(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::Notifier));
        };
        let wit_event = wit_types::Event {
            kind: to_wit_kind(event.kind),
            deploy_id: event.deploy_id.clone(),
            timestamp: event.timestamp.clone(),
            context: to_wit_context(&event.context),
            message: event.message.clone(),
        };
        let result = self
            .run(&event.context, async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .tagship_plugin_notify()
                    .call_notify(&mut *store, &wit_event)
                    .await
            })
            .await?;
        result.map_err(|message| match self.check_size(encoded(&message)) {
            Err(too_large) => too_large,
            Ok(()) => self.returned(&message),
        })
    }
}

/// Bytes a list takes in the canonical ABI besides its elements (pointer and length).
pub(super) const LIST_BYTES: usize = 8;

/// Bytes a string takes in the canonical ABI: its UTF-8 and a pointer and length. A list of
/// two million empty strings is 16 MB, not 0.
pub(super) fn encoded(text: &str) -> usize {
    LIST_BYTES + text.len()
}

pub(super) fn ticks(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis() / engine::TICK.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

pub(super) fn to_wit_context(ctx: &DeployContext) -> wit_types::DeployContext {
    wit_types::DeployContext {
        component: ctx.component.clone(),
        version: ctx.version.clone(),
        previous_version: ctx.previous_version.clone(),
        stage: ctx.stage.clone(),
        environment: ctx.environment.clone(),
        pipeline_url: ctx.pipeline_url.clone(),
        workloads: ctx.workloads.iter().map(to_wit_workload).collect(),
        app_version: ctx.app_version.clone(),
    }
}

pub(super) fn to_wit_workload(w: &WorkloadVersion) -> wit_types::WorkloadVersion {
    wit_types::WorkloadVersion {
        cluster: w.cluster.clone(),
        namespace: w.namespace.clone(),
        workload: w.workload.clone(),
        container: w.container.clone(),
        image: w.image.clone(),
        version: w.version.clone(),
    }
}

pub(super) fn to_wit_kind(kind: EventKind) -> wit_types::EventKind {
    use wit_types::EventKind as W;
    match kind {
        EventKind::DeployStarted => W::DeployStarted,
        EventKind::DeploySucceeded => W::DeploySucceeded,
        EventKind::DeployFailed => W::DeployFailed,
        EventKind::StageStarted => W::StageStarted,
        EventKind::StageSucceeded => W::StageSucceeded,
        EventKind::StageFailed => W::StageFailed,
        EventKind::AwaitingApproval => W::AwaitingApproval,
        EventKind::RollbackStarted => W::RollbackStarted,
        EventKind::RollbackSucceeded => W::RollbackSucceeded,
        EventKind::RollbackFailed => W::RollbackFailed,
        EventKind::RollbackRefused => W::RollbackRefused,
        EventKind::CheckBlocked => W::CheckBlocked,
        EventKind::LockWaiting => W::LockWaiting,
        EventKind::Test => W::Test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_budgets_are_whole_ticks_and_never_zero() {
        assert_eq!(ticks(std::time::Duration::from_secs(5)), 500);
        assert_eq!(ticks(std::time::Duration::from_millis(1)), 1);
    }
}
