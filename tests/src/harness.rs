//! The test harness: finds the environment `tests/cluster/up` started (its state directory is
//! `$TAGSHIP_CLUSTER_DIR`, default `${XDG_RUNTIME_DIR:-/tmp}/tagship-cluster`), and gives a test a
//! `kube::Client`, the kubeconfig path, the Prometheus and simulator URLs, and fresh namespaces
//! that are deleted when dropped.
//!
//! It never starts the environment and never runs cargo: when the environment is not up, it fails
//! with a message that says to run `tests/cluster/up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};

use crate::client_from_kubeconfig;
use crate::fixtures::kubectl::Kubectl;
pub use crate::fixtures::manifests::minimal_deployment as deployment_manifest;

/// Environment variable naming the state directory of a running environment.
pub const CLUSTER_DIR_VAR: &str = "TAGSHIP_CLUSTER_DIR";

/// The state directory: `$TAGSHIP_CLUSTER_DIR`, else `${XDG_RUNTIME_DIR:-/tmp}/tagship-cluster`.
pub fn cluster_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CLUSTER_DIR_VAR).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/tmp".into());
    Path::new(&runtime).join("tagship-cluster")
}

/// Reads the `KEY=VALUE` lines of the `env` file `up` writes (shell syntax, single-quoted values).
pub fn read_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('\'').to_owned()))
        .collect()
}

/// A running local environment.
#[derive(Clone)]
pub struct Environment {
    /// The state directory.
    pub dir: PathBuf,
    /// The kubeconfig `up` wrote; its current context is the first cluster.
    pub kubeconfig: PathBuf,
    /// The kubeconfig contexts, one per cluster, first is current.
    pub contexts: Vec<String>,
    /// Base URL of Prometheus, e.g. `http://127.0.0.1:19090`.
    pub prometheus_url: String,
    /// Base URL of the first cluster's simulator; the registry of namespace `N` is at `/ns/N/v2/`.
    pub simulator_url: String,
    /// A client for the first cluster.
    pub client: Client,
}

impl Environment {
    /// Connects to the running environment, or fails saying how to start it.
    pub async fn connect() -> anyhow::Result<Self> {
        let dir = cluster_dir();
        let env_file = dir.join("env");
        let hint = format!(
            "the local test environment is not up (no `{}`)\nhint: run `tests/cluster/up` first, and export {CLUSTER_DIR_VAR} if you gave it another directory",
            env_file.display()
        );
        let text = std::fs::read_to_string(&env_file).context(hint.clone())?;
        let vars = read_env_file(&text);
        let get = |key: &str| {
            vars.get(key)
                .cloned()
                .with_context(|| format!("`{key}` missing from `{}`", env_file.display()))
        };
        let kubeconfig = PathBuf::from(get("TAGSHIP_KUBECONFIG")?);
        let contexts: Vec<String> = get("TAGSHIP_CONTEXTS")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let client =
            client_from_kubeconfig(&kubeconfig, contexts.first().map(String::as_str)).await?;
        client.apiserver_version().await.context(hint)?;
        Ok(Self {
            dir,
            kubeconfig,
            contexts,
            prometheus_url: get("TAGSHIP_PROMETHEUS_URL")?,
            simulator_url: get("TAGSHIP_SIMULATOR_URL")?,
            client,
        })
    }

    /// A client for another cluster's context.
    pub async fn client_for(&self, context: &str) -> anyhow::Result<Client> {
        client_from_kubeconfig(&self.kubeconfig, Some(context)).await
    }

    /// Creates a fresh namespace `<prefix>-<random>` (plus `suffix`, e.g. `-cny`), deleted on drop.
    pub async fn namespace(&self, prefix: &str, suffix: &str) -> anyhow::Result<TestNamespace> {
        self.namespace_named(&format!("{prefix}-{}{suffix}", unique_word()))
            .await
    }

    /// Creates namespace `name`, deleted on drop.
    pub async fn namespace_named(&self, name: &str) -> anyhow::Result<TestNamespace> {
        let name = name.to_owned();
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(TestNamespace {
            name,
            kubeconfig: self.kubeconfig.clone(),
        })
    }

    /// Runs `kubectl --kubeconfig <ours> ARGS` and returns its output.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Output> {
        Kubectl::new(&self.kubeconfig)
            .output(args)
            .context("running `kubectl`")
    }

    /// Runs a Prometheus instant query and returns each series' labels and value.
    pub async fn prometheus_query(
        &self,
        promql: &str,
    ) -> anyhow::Result<Vec<(BTreeMap<String, String>, f64)>> {
        let url = format!("{}/api/v1/query", self.prometheus_url);
        let body: serde_json::Value = reqwest::Client::new()
            .get(url)
            .query(&[("query", promql)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let Some(result) = body.pointer("/data/result").and_then(|r| r.as_array()) else {
            bail!("unexpected Prometheus answer: {body}");
        };
        let mut series = Vec::new();
        for s in result {
            let labels: BTreeMap<String, String> = serde_json::from_value(s["metric"].clone())?;
            let value = s["value"][1].as_str().unwrap_or("NaN").parse::<f64>()?;
            series.push((labels, value));
        }
        Ok(series)
    }
}

/// A namespace made for one test; dropping it deletes the namespace (without waiting).
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    kubeconfig: PathBuf,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Async drop does not exist and the test's runtime may be shutting down: use kubectl.
        Kubectl::new(&self.kubeconfig).delete_namespace_in_background(&self.name);
    }
}

/// Six random lowercase letters and digits, for unique object names.
pub fn unique_word() -> String {
    (0..6)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect()
}

/// Polls `check` every 250 ms until it returns `Some`, or fails after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls the pods of `pods` every 250 ms until one that is not being deleted satisfies `check`, and
/// returns it; fails after `timeout` naming `what`.
pub async fn wait_for_pod(
    pods: &Api<Pod>,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    eventually(timeout, what, || async {
        let list = pods.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .find(|p| p.metadata.deletion_timestamp.is_none() && check(p)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_file_is_read_as_shell_assignments() {
        let vars = read_env_file(
            "# made by up\nTAGSHIP_KUBECONFIG='/tmp/x/kubeconfig'\nTAGSHIP_CONTEXTS='local-1 local-2'\n",
        );
        assert_eq!(vars["TAGSHIP_KUBECONFIG"], "/tmp/x/kubeconfig");
        assert_eq!(vars["TAGSHIP_CONTEXTS"], "local-1 local-2");
    }
}
