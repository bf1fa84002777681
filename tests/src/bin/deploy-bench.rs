//! `deploy-bench`: the deploy benchmark of [`tagship_tests::deploy_bench`]; prints a Markdown
//! section on stdout, progress on stderr.

use std::path::PathBuf;

use anyhow::bail;
use tagship_tests::deploy_bench::{self, Bench, PARTS, Settings};

const USAGE: &str = "usage: deploy-bench [--quick] [--pairs N] [--only PART,...] [--tagship PATH] [--examples DIR]

Against the local environment (tests/cluster/up, its env file exported; start it with
TAGSHIP_READY_AFTER_MS=0 so pods are Ready at once): kubectl against `tagship deploy` in
interleaved pairs, detection latency, one stage with 1/10/50 Deployments (each deploy beside
a bare watch of its namespace, this binary's internal `--stream-floor` mode, for what
receiving the watch stream costs by itself), one stage over 1 and 4 clusters, runs of 1 and
10 stages, a deploy with six plugins, an idle re-run, start-up, and plugins in Python and
JavaScript by compiler (first compile, cached load, call; a deploy baked by the Python one). The tagship binary defaults
to $CARGO_TARGET_DIR/release/tagship, else target/release/tagship (build it with
`cargo build --release -p tagship`).
--quick: 3 pairs, 1 run per scale step, 5 start-ups.
--only: run only these parts (default all, in this order): pairs, scale, clusters (needs
        tests/cluster/up --clusters 4), stages, plugins, idle, startup, interpreted.
--examples: the example plugins for `interpreted` (default $TAGSHIP_EXAMPLE_PLUGINS; built
        by tests/plugins/build-examples DIR; add js-quickjs-health.wasm, the template's
        `npm run build:quickjs`, to measure QuickJS too). Without it, the part is skipped.";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Internal: the bare watch the scale part runs beside each deploy (see `stream_floor`).
    if let [flag, context, namespace] = args.as_slice()
        && flag == "--stream-floor"
    {
        return deploy_bench::stream_floor(context, namespace);
    }
    tokio::runtime::Runtime::new()?.block_on(bench(args))
}

async fn bench(args: Vec<String>) -> anyhow::Result<()> {
    let mut settings = Settings {
        tagship: default_tagship(),
        pairs: 10,
        scale_runs: 3,
        scale_sizes: vec![1, 10, 50],
        startup_runs: 20,
        parts: PARTS.iter().map(ToString::to_string).collect(),
        examples: std::env::var_os("TAGSHIP_EXAMPLE_PLUGINS").map(PathBuf::from),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                settings.pairs = 3;
                settings.scale_runs = 1;
                settings.startup_runs = 5;
            }
            "--pairs" => settings.pairs = args.next().unwrap_or_default().parse()?,
            "--only" => {
                let wanted = args.next().unwrap_or_default();
                settings.parts = wanted.split(',').map(str::to_owned).collect();
                if let Some(bad) = settings.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
                    bail!(
                        "--only: unknown part `{bad}` (the parts: {})\n\n{USAGE}",
                        PARTS.join(", ")
                    );
                }
            }
            "--tagship" => settings.tagship = args.next().unwrap_or_default().into(),
            "--examples" => settings.examples = Some(args.next().unwrap_or_default().into()),
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
