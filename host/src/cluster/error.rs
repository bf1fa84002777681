//! How a failure to ask a cluster is told: [`ClusterError`], each variant naming the object it
//! concerns, and the API server's answer reduced to its code, reason and message.

use std::fmt;
use std::path::{Path, PathBuf};

use kube::config::KubeconfigError;

use super::retry;

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

pub(super) fn path_suffix(path: Option<&Path>) -> String {
    path.map_or_else(String::new, |p| format!(" `{}`", p.display()))
}

/// `` `a`, `b` ``, or "none".
pub(super) fn listed(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    crate::config::quoted_list(names.iter().map(String::as_str))
}

/// A kube-rs error, told as a person reads it: an API server's answer as its code, reason and
/// message (kube-rs's own text repeats the reason and appends the whole `Status` structure).
#[derive(Debug)]
pub struct KubeError(pub(super) kube::Error);

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&told(&self.0))
    }
}

/// A kube-rs error as [`KubeError`] tells it.
pub(super) fn told(error: &kube::Error) -> String {
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

/// Why a request failed in transport: the causes of `error` (hyper's own text, "client error
/// (Connect)", names only the stage that failed), or its text when it has none.
pub(super) fn transport_failure(error: &(dyn std::error::Error + 'static)) -> String {
    error
        .source()
        .map_or_else(|| error.to_string(), crate::terminal::one_line)
}

/// Whether `error` is a refused TCP connection: nothing listens at the address.
pub(super) fn is_refused(error: &kube::Error) -> bool {
    crate::terminal::causes(error).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// One object, for messages: ``deployment `registry` in namespace `gitlab-cny` ``.
#[derive(Debug, Clone, Copy)]
pub(super) struct Object<'a> {
    pub(super) kind: &'static str,
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
}

impl<'a> Object<'a> {
    pub(super) fn new(kind: &'static str, namespace: &'a str, name: &'a str) -> Self {
        Self {
            kind,
            namespace,
            name,
        }
    }

    pub(super) fn not_found(self) -> ClusterError {
        ClusterError::NotFound {
            kind: self.kind,
            name: self.name.to_owned(),
            namespace: self.namespace.to_owned(),
        }
    }

    /// An [`ClusterError::Api`] for `verb` (e.g. "read", "apply images to") on this object.
    pub(super) fn api_error(self, verb: &str, source: kube::Error) -> ClusterError {
        ClusterError::Api {
            what: format!("{verb} {self}"),
            source: KubeError(source),
        }
    }

    pub(super) fn contended(self, verb: &str, attempts: u32) -> ClusterError {
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
