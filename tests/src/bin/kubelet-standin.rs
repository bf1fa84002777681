//! `kubelet-standin`: runs the kubelet stand-in of [`tagship_tests::kubelet`] against a cluster.

use std::time::Duration;

use tagship_tests::cli::Options;
use tagship_tests::kubelet::{KubeletConfig, run};

const USAGE: &str = "usage: kubelet-standin [--kubeconfig PATH] [--context NAME] [--ready-after-ms 300] [--crash-every-ms 2000]

Binds every pod to a pretend node and drives its status the way a kubelet would, by its image
tag, its command words and its Secrets, ConfigMaps and volumes (see tests/README.md).";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse(
        std::env::args().skip(1),
        USAGE,
        &["kubeconfig", "context", "ready-after-ms", "crash-every-ms"],
    )?;
    let config = KubeletConfig {
        ready_after: Duration::from_millis(options.number("ready-after-ms", 300)?),
        crash_every: Duration::from_millis(options.number("crash-every-ms", 2000)?),
        ..KubeletConfig::default()
    };
    run(options.client().await?, config).await
}
