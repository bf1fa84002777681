//! `deploy-bench`: the deploy benchmark of [`tagship_tests::deploy_bench`]; prints a Markdown
//! section on stdout, progress on stderr.

use std::path::PathBuf;

use anyhow::bail;
use tagship_tests::deploy_bench::{Bench, Settings};

const USAGE: &str = "usage: deploy-bench [--quick] [--pairs N] [--tagship PATH]

Against the local environment (tests/cluster/up, its env file exported): kubectl against
`tagship deploy` in interleaved pairs, detection latency, one stage with 1/10/50 Deployments,
and start-up. The tagship binary defaults to $CARGO_TARGET_DIR/release/tagship, else
target/release/tagship (build it with `cargo build --release -p tagship`).
--quick: 3 pairs, 1 run per scale step, 5 start-ups.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut settings = Settings {
        tagship: default_tagship(),
        pairs: 10,
        scale_runs: 3,
        scale_sizes: vec![1, 10, 50],
        startup_runs: 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                settings.pairs = 3;
                settings.scale_runs = 1;
                settings.startup_runs = 5;
            }
            "--pairs" => settings.pairs = args.next().unwrap_or_default().parse()?,
            "--tagship" => settings.tagship = args.next().unwrap_or_default().into(),
            "--help" | "-h" => {
                eprintln!("{USAGE}");
                return Ok(());
            }
            other => bail!("unexpected argument `{other}`\n\n{USAGE}"),
        }
    }
    let markdown = Bench::new(settings).await?.run().await?;
    #[allow(clippy::print_stdout, reason = "the report is this binary's output")]
    {
        println!("{markdown}");
    }
    Ok(())
}

fn default_tagship() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        )
        .join("release/tagship")
}
