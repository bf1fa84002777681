//! The Kubernetes adapter: everything tagship does to a cluster, through kube-rs.
//!
//! [`KubeCluster`] owns one client for one kubeconfig context and offers exactly the operations a
//! deploy needs: read a Deployment, server-side apply of the container images and audit
//! annotations tagship owns, watch a rollout to its end, run a migration Job, the deploy lock (a
//! `coordination.k8s.io/v1` Lease), and a bounded audit history plus a small per-environment state
//! record in `ConfigMaps`.
//!
//! This module must not decide anything about a deploy (that is the lifecycle's job) and must not
//! print: verdicts such as [`LiveDeployment::rollout_state`] are pure functions over what the
//! server returned, and outcomes that are data ([`RolloutOutcome`], [`JobOutcome`],
//! [`LockAttempt`]) are values, not errors. [`ClusterError`] means the cluster could not be asked.
//!
//! # Guarantees
//!
//! - Only fields a Kubernetes 1.20 API server knows are sent (1.20 rejects unknown fields).
//! - Transient failures (HTTP 429, 500, 502–504, connection errors, no answer) of idempotent
//!   requests are retried with exponential back-off and jitter (honouring `Retry-After` up to
//!   10 s a wait) for at most 20 s in all from the first attempt, attempts that hang included
//!   (`retry::BUDGET`). This is the only retry policy: kube-rs's own retry layer is switched off,
//!   because stacked under ours its 15 retries growing towards 1000 s made a persistent 503 take
//!   many minutes to report.
//! - No request keeps tagship waiting longer than [`READ_TIMEOUT`] to connect, to be read, or
//!   between two reads of its answer: a request the API server accepted and never answers fails
//!   (and is retried) instead of hanging. Watch streams differ: on a connection pool of their
//!   own, the server ends each one after `WATCH_SECONDS` and a stream may stay silent until
//!   then, so only silence past that by [`READ_TIMEOUT`] ([`WATCH_READ_TIMEOUT`]) is a hang;
//!   a watch request itself is still answered within [`READ_TIMEOUT`] or fails.
//! - An outage is told once per cluster (a WARN from the second consecutive failure of any
//!   request or watch, or from the first that hung), naming how long the activity that tells it
//!   keeps trying; it gives up by then at the latest (give or take the rounding to seconds).
//! - Rollouts are judged by `kubectl rollout status`'s rule, never by a status that belongs to an
//!   older generation.

mod deployment;
mod error;
mod history;
mod job;
mod lease;
mod pods;
mod retry;
mod server;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use deployment::{
    ApplyOutcome, LiveDeployment, PROGRESS_DEADLINE_EXCEEDED, PodTemplate, RolloutOutcome,
    RolloutState,
};
pub use error::{ClusterError, KubeError};
use error::{Object, is_refused};
pub use history::{HISTORY_KEY, HISTORY_LIMIT};
pub use job::{
    JobOutcome, JobSpec, MigrationRun, TemplateError, job_body, job_outcome, migration_pod,
};
pub use lease::{
    ANNOTATION_PIPELINE_URL, ANNOTATION_REASON, ANNOTATION_SINCE, LockAttempt, LockInfo, lock_info,
};
pub use pods::{PodFailure, PodView, pod_failure};
use server::Server;

/// How long the API server may keep a request waiting: to accept its connection, to read it,
/// and before and between the reads of its answer. Past it the request fails (and, where
/// idempotent, is retried within the retry's budget). The Kubernetes API's own latency
/// objectives are 1 s for one object and 5 s for a namespace's list (99th percentile), so 10 s
/// of silence is a server that stopped answering. Not for the silence of a watch (see
/// [`WATCH_READ_TIMEOUT`]).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The read timeout of the watches' connection pool: a watch stream may be silent until the
/// server ends it after `watch::WATCH_SECONDS` (a quiet rollout is healthy), so only silence
/// longer than that by [`READ_TIMEOUT`] is a server that stopped answering.
pub const WATCH_READ_TIMEOUT: Duration =
    Duration::from_secs(watch::WATCH_SECONDS as u64).saturating_add(READ_TIMEOUT);

/// The field manager tagship's server-side applies and writes use.
pub const FIELD_MANAGER: &str = "tagship";

/// A connection to one context of a kubeconfig.
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
    /// The same server through a connection pool of its own, for long watches: a watch holds
    /// its HTTP/1.1 connection and closes it when dropped mid-stream, so on the shared pool the
    /// first request after every rollout waited for a new TCP and TLS handshake (~50 ms here).
    /// Its read timeout is [`WATCH_READ_TIMEOUT`], above the server's end of a quiet watch.
    watcher: Client,
    /// The context's API server, as a person waiting on the run hears of it.
    server: Arc<Server>,
}

impl fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeCluster")
            .field("context", &self.server.context)
            .finish_non_exhaustive()
    }
}

impl KubeCluster {
    /// Connects to `context` of the kubeconfig at `kubeconfig` (`None`: `$KUBECONFIG`, then
    /// `~/.kube/config`, then the pod's service account when running in a pod, as
    /// `kubectl` and client-go do); `context` `None` means the kubeconfig's current context
    /// (there is none in a pod: the cluster is called [`IN_CLUSTER`]).
    ///
    /// Asks the server for its version once, so a wrong address or credential fails here and not
    /// in the middle of a deploy.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Self, ClusterError> {
        let (mut config, context) = match credentials(kubeconfig)? {
            Credentials::Kubeconfig { file, path } => {
                let context = resolve_context(&file, path.as_deref(), context)?;
                let options = KubeConfigOptions {
                    context: Some(context.clone()),
                    ..KubeConfigOptions::default()
                };
                let config = Config::from_custom_kubeconfig(*file, &options)
                    .await
                    .map_err(|source| ClusterError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?;
                (config, context)
            }
            Credentials::InCluster => {
                if let Some(context) = context {
                    return Err(ClusterError::NoKubeconfigForContext {
                        context: context.to_owned(),
                    });
                }
                let config = Config::incluster().map_err(ClusterError::InCluster)?;
                (config, IN_CLUSTER.to_owned())
            }
        };
        // One retry policy, ours (see the module's guarantees), not two stacked.
        config.default_retry = false;
        // kube-rs sets no read timeout: an API server that accepts a request and never answers
        // would hang the run (and its lock release) for as long as it stalls. Its connect
        // timeout (30 s) and write timeout (295 s) are longer than a retry's whole budget.
        config.connect_timeout = Some(READ_TIMEOUT);
        config.write_timeout = Some(READ_TIMEOUT);
        config.read_timeout = Some(READ_TIMEOUT);
        // Counted from the request, not from when its pooled connection went idle (which would
        // leave a request on a connection idle for 9 s one second to be answered).
        config.reset_reader_on_write = true;
        let url = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let connect_error = |source: kube::Error| match &source {
            kube::Error::Api(status) if status.code == 401 => ClusterError::Unauthorized {
                context: context.clone(),
                server: url.clone(),
            },
            _ if is_refused(&source) => ClusterError::Refused {
                context: context.clone(),
                server: url.clone(),
            },
            _ => ClusterError::Connect {
                context: context.clone(),
                server: url.clone(),
                source: KubeError(source),
            },
        };
        let client = Client::try_from(config.clone()).map_err(connect_error)?;
        // A quiet watch is healthy: the server ends it (see WATCH_READ_TIMEOUT).
        config.read_timeout = Some(WATCH_READ_TIMEOUT);
        let watcher = Client::try_from(config).map_err(connect_error)?;
        let server = Arc::new(Server::new(context.clone()));
        retry::retry(&server, || client.apiserver_version())
            .await
            .map_err(connect_error)?;
        Ok(Self {
            client,
            watcher,
            server,
        })
    }

    /// Wraps an existing client; `context` is only used in messages.
    ///
    /// # Caveats
    ///
    /// Watches use the same client, so its read timeout (if any) must be above
    /// [`WATCH_READ_TIMEOUT`], or quiet watches are cut and resumed.
    pub fn from_client(client: Client, context: impl Into<String>) -> Self {
        Self {
            watcher: client.clone(),
            client,
            server: Arc::new(Server::new(context.into())),
        }
    }

    /// The kubeconfig context this connection uses.
    pub fn context(&self) -> &str {
        &self.server.context
    }

    /// The underlying kube-rs client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The name of the cluster tagship runs in, when it uses the pod's service account.
pub const IN_CLUSTER: &str = "in-cluster";

/// Where a connection's credentials come from.
pub enum Credentials {
    /// A kubeconfig, read.
    Kubeconfig {
        /// The file read.
        file: Box<Kubeconfig>,
        /// Its path, when one was given; `None` for `$KUBECONFIG` or `~/.kube/config`.
        path: Option<PathBuf>,
    },
    /// The service account of the pod tagship runs in (`KUBERNETES_SERVICE_HOST` and the
    /// token and CA mounted under `/var/run/secrets/kubernetes.io/serviceaccount`).
    InCluster,
}

/// The credentials a connection with `kubeconfig` (`None`: the default lookup) would use:
/// the file given; else `$KUBECONFIG`; else `~/.kube/config` if it exists; else the pod's
/// service account if tagship runs in a pod.
///
/// # Errors
///
/// [`ClusterError::Kubeconfig`] or [`ClusterError::KubeconfigVariable`] for a kubeconfig that
/// cannot be read; [`ClusterError::NoCredentials`] when there is neither a kubeconfig nor a pod.
pub fn credentials(kubeconfig: Option<&Path>) -> Result<Credentials, ClusterError> {
    if let Some(path) = kubeconfig {
        return Kubeconfig::read_from(path)
            .map(|file| Credentials::Kubeconfig {
                file: Box::new(file),
                path: Some(path.to_owned()),
            })
            .map_err(|source| ClusterError::Kubeconfig {
                path: Some(path.to_owned()),
                source,
            });
    }
    if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return Kubeconfig::read()
            .map(|file| Credentials::Kubeconfig {
                file: Box::new(file),
                path: None,
            })
            .map_err(|source| ClusterError::KubeconfigVariable {
                value: value.to_string_lossy().into_owned(),
                source,
            });
    }
    if let Some(home) = dirs::home_dir().map(|h| h.join(".kube").join("config"))
        && home.exists()
    {
        return Kubeconfig::read_from(&home)
            .map(|file| Credentials::Kubeconfig {
                file: Box::new(file),
                path: Some(home.clone()),
            })
            .map_err(|source| ClusterError::Kubeconfig {
                path: Some(home),
                source,
            });
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Ok(Credentials::InCluster);
    }
    Err(ClusterError::NoCredentials)
}

/// The context to use of `file`: `asked`, else its current context; it must exist.
pub fn resolve_context(
    file: &Kubeconfig,
    path: Option<&Path>,
    asked: Option<&str>,
) -> Result<String, ClusterError> {
    let context = match asked {
        Some(name) => name.to_owned(),
        None => file
            .current_context
            .clone()
            .ok_or_else(|| ClusterError::NoContext {
                path: path.map(Path::to_path_buf),
            })?,
    };
    if !file.contexts.iter().any(|c| c.name == context) {
        return Err(ClusterError::UnknownContext {
            path: path.map(Path::to_path_buf),
            context,
            known: file.contexts.iter().map(|c| c.name.clone()).collect(),
        });
    }
    Ok(context)
}

#[cfg(test)]
mod tests;
