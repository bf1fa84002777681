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
mod history;
mod job;
mod lease;
mod pods;
mod retry;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use tokio::time::Instant;

pub use deployment::{
    ApplyOutcome, LiveDeployment, PROGRESS_DEADLINE_EXCEEDED, PodTemplate, RolloutOutcome,
    RolloutState,
};
pub use history::{HISTORY_KEY, HISTORY_LIMIT};
pub use job::{
    JobOutcome, JobSpec, MigrationRun, TemplateError, job_body, job_outcome, migration_pod,
};
pub use lease::{
    ANNOTATION_PIPELINE_URL, ANNOTATION_REASON, ANNOTATION_SINCE, Holder, LockAttempt, LockInfo,
    lock_info,
};
pub use pods::{PodFailure, PodView, pod_failure};

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

/// What went wrong talking to a cluster. Every variant names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or does not contain the context.
    #[error("cannot load kubeconfig{}", path_suffix(path.as_deref()))]
    Kubeconfig {
        /// The file, `None` for the default locations.
        path: Option<PathBuf>,
        /// What kube-rs reported.
        #[source]
        source: KubeconfigError,
    },
    /// `$KUBECONFIG` names files that cannot be read as a kubeconfig.
    #[error("cannot load the kubeconfig that $KUBECONFIG names (`{value}`)")]
    KubeconfigVariable {
        /// The variable's value.
        value: String,
        /// What kube-rs reported.
        #[source]
        source: KubeconfigError,
    },
    /// No kubeconfig anywhere, and not in a pod.
    #[error(
        "no Kubernetes credentials: there is no kubeconfig (`kubeconfig` in the configuration, \
         $KUBECONFIG, or ~/.kube/config) and tagship does not run in a pod \
         (KUBERNETES_SERVICE_HOST is unset); point `kubeconfig` or $KUBECONFIG at one"
    )]
    NoCredentials,
    /// A context was named, but the credentials are the pod's service account.
    #[error(
        "context `{context}` needs a kubeconfig, and there is none (tagship runs in a pod, with \
         its service account for the cluster it runs in); point `kubeconfig` or $KUBECONFIG at \
         one that has the context, or leave `clusters` out to deploy to this cluster"
    )]
    NoKubeconfigForContext {
        /// The context.
        context: String,
    },
    /// Running in a pod, but its service account cannot be read.
    #[error("cannot use the pod's service account")]
    InCluster(#[source] kube::config::InClusterError),
    /// The kubeconfig names no current context and none was given.
    #[error("kubeconfig{} has no current context; name one", path_suffix(path.as_deref()))]
    NoContext {
        /// The file, `None` for the default locations.
        path: Option<PathBuf>,
    },
    /// The kubeconfig has no context of the name asked for.
    #[error(
        "kubeconfig{} has no context `{context}` (it has {})",
        path_suffix(path.as_deref()),
        listed(known)
    )]
    UnknownContext {
        /// The file, `None` for the default locations.
        path: Option<PathBuf>,
        /// The context asked for (a stage's `clusters`, or the file's current context).
        context: String,
        /// The contexts the file has.
        known: Vec<String>,
    },
    /// The API server of the context could not be reached, or failed.
    #[error("cannot reach the API server of context `{context}` at {server}")]
    Connect {
        /// The kubeconfig context.
        context: String,
        /// The server's URL, from the kubeconfig.
        server: String,
        /// What kube-rs reported.
        #[source]
        source: KubeError,
    },
    /// Nothing listens at the API server's address (after the retries).
    #[error(
        "cannot reach the API server of context `{context}` at {server}: the connection was \
         refused, so nothing listens there; check that the API server is up and that the \
         kubeconfig's `server` is its address"
    )]
    Refused {
        /// The kubeconfig context.
        context: String,
        /// The server's URL, from the kubeconfig.
        server: String,
    },
    /// The API server refused the kubeconfig's credentials.
    #[error(
        "the API server of context `{context}` at {server} refused the kubeconfig's credentials \
         (401 Unauthorized): its token or client certificate is wrong or has expired; refresh the \
         kubeconfig (e.g. with your cloud's get-credentials command)"
    )]
    Unauthorized {
        /// The kubeconfig context.
        context: String,
        /// The server's URL, from the kubeconfig.
        server: String,
    },
    /// An object the operation needs does not exist.
    #[error("{kind} `{name}` in namespace `{namespace}` not found")]
    NotFound {
        /// The object's kind, lowercase (`deployment`).
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The object's namespace.
        namespace: String,
    },
    /// A Deployment has no container of a name tagship was asked to set the image of.
    #[error("deployment `{deployment}` in namespace `{namespace}` has no container `{container}`")]
    UnknownContainer {
        /// The Deployment.
        deployment: String,
        /// Its namespace.
        namespace: String,
        /// The container name asked for.
        container: String,
    },
    /// The API server rejected a request or failed (after the retries for transient errors).
    #[error("cannot {what}")]
    Api {
        /// What was attempted, naming the object (`apply images to deployment `x` in …`).
        what: String,
        /// What kube-rs reported.
        #[source]
        source: KubeError,
    },
    /// Optimistic concurrency kept failing: others wrote the object every time.
    #[error("gave up on {what} after {attempts} conflicting writes")]
    Contended {
        /// What was attempted, naming the object.
        what: String,
        /// How many writes were tried.
        attempts: u32,
    },
    /// Data tagship stored in the cluster cannot be read back.
    #[error("{what} is unreadable: {reason}")]
    Corrupt {
        /// The object and key.
        what: String,
        /// Why.
        reason: String,
    },
    /// The deploy lock is no longer held by the holder that tries to renew it.
    #[error(
        "lock `{lease}` in namespace `{namespace}` is no longer held by `{holder}`{}",
        by.as_deref().map_or_else(|| " (it is free)".to_owned(), |by| format!(" (now held by `{by}`)"))
    )]
    LockLost {
        /// The Lease.
        lease: String,
        /// Its namespace.
        namespace: String,
        /// Who thought it held the lock.
        holder: String,
        /// Who holds it now, `None` if nobody (or the Lease is gone).
        by: Option<String>,
    },
}

impl ClusterError {
    /// The HTTP status the API server answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClusterError::Api { source, .. } | ClusterError::Connect { source, .. } => {
                match &source.0 {
                    kube::Error::Api(status) => Some(status.code),
                    _ => None,
                }
            }
            ClusterError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

fn path_suffix(path: Option<&Path>) -> String {
    path.map_or_else(String::new, |p| format!(" `{}`", p.display()))
}

/// `` `a`, `b` ``, or "none".
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    crate::config::quoted_list(names.iter().map(String::as_str))
}

/// A kube-rs error, told as a person reads it: an API server's answer as its code, reason and
/// message (kube-rs's own text repeats the reason and appends the whole `Status` structure).
#[derive(Debug)]
pub struct KubeError(kube::Error);

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&told(&self.0))
    }
}

/// A kube-rs error as [`KubeError`] tells it.
fn told(error: &kube::Error) -> String {
    if let Some(waited) = retry::is_hang(error) {
        return format!("no answer within {} s", retry::seconds(waited));
    }
    match error {
        kube::Error::Api(status) => {
            let mut text = format!("the API server answered {}", status.code);
            if !status.reason.is_empty() {
                text.push(' ');
                text.push_str(&status.reason);
            }
            if !status.message.is_empty() && status.message != status.reason {
                text.push_str(": ");
                text.push_str(&status.message);
            }
            text
        }
        // "ServiceError: client error (Connect)" says only that the request failed; its
        // causes say why ("tcp connect error: Connection refused", a TLS alert, a timeout).
        kube::Error::Service(inner) => transport_failure(inner.as_ref()),
        kube::Error::HyperError(inner) => transport_failure(inner),
        other => other.to_string(),
    }
}

impl std::error::Error for KubeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            // Everything they have is in the text above.
            kube::Error::Api(_) | kube::Error::Service(_) | kube::Error::HyperError(_) => None,
            other => other.source(),
        }
    }
}

/// The API server of one kubeconfig context as a person waiting on the run hears of it: an
/// outage is told once when it begins and once when it ends, however many requests and watches
/// ride it out at the same time (a stage's applies, its rollout watch, the lock's renewals).
#[derive(Debug)]
struct Server {
    /// The kubeconfig context, as messages name it.
    context: String,
    /// The outage being told; `None` while the server answers.
    outage: Mutex<Option<Outage>>,
}

/// An outage as it was told.
#[derive(Debug, Clone, Copy)]
struct Outage {
    /// When its first failed attempt began.
    began: Instant,
    /// How long the activity that told it said it keeps trying.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "what was told, kept for the tests of its truth")
    )]
    left: Duration,
    /// When that activity gives up at the latest.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "what was told, kept for the tests of its truth")
    )]
    gives_up: Instant,
}

impl Server {
    fn new(context: String) -> Self {
        Self {
            context,
            outage: Mutex::new(None),
        }
    }

    /// An activity failed (see [`retry::Patience::tell`]), the first of its consecutive failed
    /// attempts beginning at `began`, with `error` last, and keeps trying for `left` at most:
    /// one quick failure is a blip (told only with -v), this is an outage, told unless it
    /// already is. Whether it was told now.
    fn failing(&self, error: &kube::Error, began: Instant, left: Duration) -> bool {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if outage.is_some() {
            return false;
        }
        *outage = Some(Outage {
            began,
            left,
            gives_up: Instant::now() + left,
        });
        tracing::warn!(
            "requests to the API server of context `{}` are failing ({}); retrying for about {} s",
            self.context,
            told(error),
            retry::seconds(left)
        );
        true
    }

    /// The server answered: an outage being told is over. How long it lasted, when one was.
    fn answered(&self) -> Option<Duration> {
        let began = self
            .outage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?
            .began;
        tracing::info!(
            "the API server of context `{}` answers again, {:.1} s after the first failure",
            self.context,
            began.elapsed().as_secs_f32()
        );
        Some(began.elapsed())
    }

    /// The outage being told, if one is.
    #[cfg(test)]
    fn told(&self) -> Option<Outage> {
        *self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a request failed in transport: the causes of `error` (hyper's own text, "client error
/// (Connect)", names only the stage that failed), or its text when it has none.
fn transport_failure(error: &(dyn std::error::Error + 'static)) -> String {
    error
        .source()
        .map_or_else(|| error.to_string(), crate::report::one_line)
}

/// Whether `error` is a refused TCP connection: nothing listens at the address.
fn is_refused(error: &kube::Error) -> bool {
    crate::report::causes(error).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// One object, for messages: ``deployment `registry` in namespace `gitlab-cny` ``.
#[derive(Debug, Clone, Copy)]
struct Object<'a> {
    kind: &'static str,
    namespace: &'a str,
    name: &'a str,
}

impl<'a> Object<'a> {
    fn new(kind: &'static str, namespace: &'a str, name: &'a str) -> Self {
        Self {
            kind,
            namespace,
            name,
        }
    }

    fn not_found(self) -> ClusterError {
        ClusterError::NotFound {
            kind: self.kind,
            name: self.name.to_owned(),
            namespace: self.namespace.to_owned(),
        }
    }

    /// An [`ClusterError::Api`] for `verb` (e.g. "read", "apply images to") on this object.
    fn api_error(self, verb: &str, source: kube::Error) -> ClusterError {
        ClusterError::Api {
            what: format!("{verb} {self}"),
            source: KubeError(source),
        }
    }

    fn contended(self, verb: &str, attempts: u32) -> ClusterError {
        ClusterError::Contended {
            what: format!("{verb} {self}"),
            attempts,
        }
    }
}

impl fmt::Display for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}` in namespace `{}`",
            self.kind, self.name, self.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_server_s_answer_is_told_by_code_reason_and_message_without_its_structure() {
        use kube::core::Status;
        let told = |status: Status| KubeError(kube::Error::Api(Box::new(status))).to_string();
        assert_eq!(
            told(Status::failure("Unauthorized", "Unauthorized").with_code(401)),
            "the API server answered 401 Unauthorized"
        );
        assert_eq!(
            told(
                Status::failure(
                    "deployments.apps \"registry\" is forbidden: User \"ci\" cannot patch",
                    "Forbidden"
                )
                .with_code(403)
            ),
            "the API server answered 403 Forbidden: deployments.apps \"registry\" is forbidden: \
             User \"ci\" cannot patch"
        );
        let err = KubeError(kube::Error::Api(Box::new(Status::failure("m", "r"))));
        assert!(std::error::Error::source(&err).is_none());
    }

    #[tokio::test]
    async fn a_refused_connection_is_told_by_its_cause_without_the_client_s_wrappers() {
        // A port nobody listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
        let client = Client::try_from(config).expect("a client");
        let err = client
            .apiserver_version()
            .await
            .expect_err("nobody listens");
        assert!(is_refused(&err));
        let told = KubeError(err).to_string();
        assert!(
            told.starts_with("tcp connect error: Connection refused"),
            "{told}"
        );
        assert!(
            !told.contains("ServiceError") && !told.contains("client error"),
            "{told}"
        );
    }

    #[test]
    fn an_outage_is_told_once_however_many_activities_ride_it_out() {
        let server = Server::new("local-1".into());
        let refused = || kube::Error::Service("connection refused".into());
        let began = Instant::now();
        let wait = Duration::from_secs(10);
        assert!(
            server.failing(&refused(), began, wait),
            "the first activity tells it"
        );
        assert!(
            !server.failing(&refused(), began, wait),
            "the watch does not again"
        );
        assert!(server.answered().is_some(), "its end is told");
        assert_eq!(server.answered(), None, "and only once");
        assert!(
            server.failing(&refused(), Instant::now(), wait),
            "a new outage is told"
        );
    }

    #[test]
    fn messages_name_the_object_in_backticks() {
        let err = Object::new("deployment", "gitlab-cny", "registry").not_found();
        assert_eq!(
            err.to_string(),
            "deployment `registry` in namespace `gitlab-cny` not found"
        );
        let lost = ClusterError::LockLost {
            lease: "gstg".into(),
            namespace: "gitlab".into(),
            holder: "ci-1".into(),
            by: Some("ci-2".into()),
        };
        assert_eq!(
            lost.to_string(),
            "lock `gstg` in namespace `gitlab` is no longer held by `ci-1` (now held by `ci-2`)"
        );
    }
}
