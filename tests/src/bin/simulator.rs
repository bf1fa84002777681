//! `simulator`: serves the registry traffic and metrics simulator of [`tagship_tests::simulator`].

use tagship_tests::cli::Options;
use tagship_tests::simulator::{SimulatorConfig, run};

const USAGE: &str = "usage: simulator [--kubeconfig PATH] [--context NAME] [--listen 127.0.0.1:0] [--requests-per-second 100]

Answers GET /ns/<namespace>/v2/ like the registry and serves simulated metrics on /metrics;
plays the image registry's API: /v2/, /v2/<name>/manifests/<tag> and tokens from /jwt/auth.
Prints `simulator: http://ADDR` on stderr once listening.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse(
        std::env::args().skip(1),
        USAGE,
        &["kubeconfig", "context", "listen", "requests-per-second"],
    )?;
    let config = SimulatorConfig {
        requests_per_second: u32::try_from(options.number("requests-per-second", 100)?)?,
        ..SimulatorConfig::default()
    };
    let listener =
        tokio::net::TcpListener::bind(options.get("listen").unwrap_or("127.0.0.1:0")).await?;
    eprintln!("simulator: http://{}", listener.local_addr()?);
    run(options.client().await?, config, listener).await
}
