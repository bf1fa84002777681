//! tagship's local test environment: a kubelet stand-in and a registry traffic simulator for the
//! local Kubernetes control plane that `tests/cluster/up` starts, and the harness the end-to-end
//! tests use to reach that environment. Conventions are documented in `tests/README.md`.
//!
//! This crate never builds or starts the control plane itself (that is `tests/cluster/up`), and
//! never runs cargo.

pub mod cli;
pub mod configuration;
pub mod conventions;
pub mod deploy_bench;
pub mod fault_proxy;
pub mod fixtures;
pub mod harness;
pub mod interpreted_bench;
pub mod kubelet;
pub mod reference;
pub mod rollout;
pub mod simulator;

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A client for `context` (or the current context) of the kubeconfig at `path`.
pub async fn client_from_kubeconfig(path: &Path, context: Option<&str>) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok(Client::try_from(config)?)
}
