//! `tagship plugin inspect|run`: for plugin authors.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{CommandError, OutputFormat};
use crate::context::{DEPLOY_CONTEXT_HELP, DeployContext, Event, EventKind};
use crate::exit::Outcome;
use crate::plugins::{Grants, Limits, PluginError, PluginHost, PluginKind, PluginSpec, Source};
use crate::terminal;
use crate::verdict::HealthStatus;

/// Plugin author tools.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's kind, API version, imports, size and sha256, without running it.
    Inspect(InspectArgs),
    /// Run one call of a plugin in the same sandbox as a deploy, and print the result as JSON.
    ///
    /// Health checks get the context and print `healthy`, `unhealthy` or `unknown`; compat
    /// checks print `compatible` or `incompatible`; notifiers are sent a `test` event built
    /// from the context and print `delivered`, or `failed` when the plugin returned an error.
    /// Anything that went wrong in the sandbox prints `error`. The JSON always has `verdict`
    /// and `reason`.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Compile plugins into the cache ahead of use, so that no deploy pays for it.
    ///
    /// A plugin is compiled to native code on its first use and kept in the cache
    /// (`TAGSHIP_CACHE_DIR`, default `~/.cache/tagship/plugins`). A Rust plugin compiles in a
    /// fraction of a second; a Python or JavaScript one carries its interpreter and takes seconds
    /// and hundreds of MB. Run this where the cache is kept (a CI cache, the runner's image)
    /// with the same tagship: a cache entry belongs to one tagship version and one machine type.
    #[command(after_help = PRECOMPILE_AFTER_HELP)]
    Precompile(PrecompileArgs),
}

const PRECOMPILE_AFTER_HELP: &str = concat!(
    "Exit codes: 0 every plugin is in the cache; 2 a plugin cannot be loaded (the others are still compiled).\n\n",
    "Examples:\n",
    "  tagship plugin precompile --config tagship.toml     # every plugin of the configuration\n",
    "  tagship plugin precompile plugins/my-check.wasm"
);

/// Arguments of `plugin precompile`.
#[derive(Debug, Args)]
pub struct PrecompileArgs {
    /// Plugins to compile: `.wasm` component files or `builtin:NAME`.
    #[arg(value_name = "PLUGIN", required_unless_present = "config")]
    pub plugins: Vec<String>,

    /// Compile every plugin of this configuration file (paths relative to it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

const RUN_AFTER_HELP: &str = concat!(
    "Exit codes: 0 passing verdict (healthy, compatible, delivered); 1 failing verdict (unhealthy, incompatible);\n",
    "2 usage error or a plugin that cannot be loaded; 3 unknown; 5 plugin error (trap, limit, denied request,\n",
    "or the plugin returned an error).\n\n",
    "Example:\n",
    "  echo '{\"component\":\"registry\",\"version\":\"v3.1.0\",\"stage\":\"gstg-cny\",\"environment\":\"gstg\"}' |\n",
    "    tagship plugin run builtin:prometheus-health --input - --allow-host 127.0.0.1:9090 \\\n",
    "      --config url=http://127.0.0.1:9090 --config 'query=up{job=\"registry\"}' --config 'pass=== 1'"
);

/// Arguments of `plugin inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plugin: a `.wasm` component file, or `builtin:NAME`.
    pub plugin: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `plugin run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plugin: a `.wasm` component file, or `builtin:NAME`.
    pub plugin: String,

    /// The deploy context as JSON, from a file or `-` for stdin.
    #[arg(long, value_name = "FILE|-", long_help = DEPLOY_CONTEXT_HELP)]
    pub input: String,

    /// A configuration value for the plugin (split at the first `=`); repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,

    /// Grant outbound HTTP to `HOST` (scheme's default port) or `HOST:PORT`; repeatable.
    /// Nothing is reachable without a grant, whatever the plugin's `url` setting says.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_hosts: Vec<String>,

    /// Grant the secret `NAME`: the plugin may read the value of this process's environment
    /// variable `NAME`. Values are redacted from every log line and error. Repeatable.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,

    /// Memory limit in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub memory_mib: usize,

    /// Guest CPU time limit in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub cpu_ms: u64,

    /// Wall-clock limit of the call in milliseconds (includes waiting on HTTP).
    #[arg(long, value_name = "MS", default_value_t = 30000)]
    pub wall_ms: u64,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        format!("`{text}` is not KEY=VALUE (e.g. --config url=http://127.0.0.1:9090)")
    })?;
    if key.is_empty() {
        return Err(format!("`{text}` has an empty key"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Runs a `plugin` subcommand.
pub async fn run(command: PluginCommand) -> Result<Outcome, CommandError> {
    match command {
        PluginCommand::Inspect(args) => inspect(&args),
        PluginCommand::Run(args) => run_once(args).await,
        PluginCommand::Precompile(args) => precompile(&args),
    }
}

fn precompile(args: &PrecompileArgs) -> Result<Outcome, CommandError> {
    let mut sources: Vec<(String, Source)> = args
        .plugins
        .iter()
        .map(|p| (p.clone(), Source::parse(p)))
        .collect();
    if let Some(path) = &args.config {
        let config = super::common::load(path)?;
        sources.extend(config.plugins.values().map(|plugin| {
            let source = match &plugin.source {
                crate::config::PluginSource::Builtin(n) => Source::Builtin(n.clone()),
                crate::config::PluginSource::File(p) => Source::File(p.clone()),
            };
            (format!("[plugins.{}]", plugin.name), source)
        }));
    }
    let host = PluginHost::new();
    let Some(dir) = host.cache_dir() else {
        return Err(CommandError::usage(anyhow::anyhow!(
            "the plugin cache is not usable (see the warning above): set TAGSHIP_CACHE_DIR to a directory this user owns"
        )));
    };
    let mut failed = None;
    for (name, source) in sources {
        let started = Instant::now();
        match host.precompile(&source) {
            Ok((cached, compiler)) => terminal::stdout_line(&format!(
                "{} {} ({} ms, {})",
                if name == source.to_string() {
                    name
                } else {
                    format!("{name}: {source}")
                },
                if cached {
                    "already in the cache"
                } else {
                    "compiled into the cache"
                },
                started.elapsed().as_millis(),
                compiler.name()
            )),
            Err(e) => {
                terminal::stderr_line(&format!("{name}: {e}"));
                failed = Some(e);
            }
        }
    }
    terminal::stdout_line(&format!("cache: {}", dir.display()));
    match failed {
        Some(e) => Err(load_error(e)),
        None => Ok(Outcome::Done),
    }
}

fn load_error(error: PluginError) -> CommandError {
    CommandError::new(error.outcome(), error)
}

fn inspect(args: &InspectArgs) -> Result<Outcome, CommandError> {
    let host = PluginHost::new();
    let inspection = host
        .inspect(&Source::parse(&args.plugin))
        .map_err(load_error)?;
    match args.output {
        OutputFormat::Json => terminal::stdout_json(&inspection),
        OutputFormat::Text => {
            terminal::stdout_line(&format!(
                "plugin:      {}\nkind:        {} (world tagship:plugin/{})\napi version: {}\nsize:        {} bytes\nsha256:      {}\nexports:     {}\nimports:\n{}",
                inspection.source,
                inspection.kind,
                inspection.kind.world(),
                inspection.api_version,
                inspection.size,
                inspection.sha256,
                inspection.exports.join(", "),
                inspection
                    .imports
                    .iter()
                    .map(|i| format!("  {:<44} {}", i.name, i.status))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ));
        }
    }
    Ok(Outcome::Done)
}

/// The JSON `plugin run` prints.
#[derive(Debug, Serialize)]
struct RunResult {
    plugin: String,
    kind: Option<PluginKind>,
    verdict: &'static str,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    duration_ms: f64,
}

fn read_input(input: &str) -> anyhow::Result<DeployContext> {
    let (text, from) = if input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the deploy context from stdin")?;
        (text, "stdin".to_owned())
    } else {
        let path = PathBuf::from(input);
        (fs_err::read_to_string(&path)?, path.display().to_string())
    };
    serde_json::from_str(&text).with_context(|| {
        format!("the deploy context in {from} is not valid; expected JSON like {{\"component\":\"registry\",\"version\":\"v3.1.0\",\"stage\":\"gstg-cny\",\"environment\":\"gstg\"}}")
    })
}

async fn run_once(args: RunArgs) -> Result<Outcome, CommandError> {
    let ctx = read_input(&args.input).map_err(CommandError::usage)?;
    let mut grants = Grants::none()
        .with_hosts(&args.allow_hosts)
        .map_err(|e| CommandError::usage(anyhow::anyhow!("--allow-host: {e}")))?;
    for name in &args.secrets {
        let value = std::env::var(name).ok();
        if value.is_none() {
            tracing::warn!(
                "secret `{name}` is granted but the environment variable `{name}` is not set"
            );
        }
        grants = grants.with_secret(name, value);
    }
    let limits = Limits {
        memory_bytes: args.memory_mib << 20,
        cpu: Duration::from_millis(args.cpu_ms),
        wall: Duration::from_millis(args.wall_ms),
        ..Limits::default()
    };
    let source = Source::parse(&args.plugin);
    let spec = PluginSpec {
        name: source.to_string(),
        source,
        config: args.config.into_iter().collect::<BTreeMap<_, _>>(),
        grants,
        limits,
    };
    let host = PluginHost::new();
    let plugin = host.load(spec).map_err(load_error)?;
    let started = Instant::now();
    let mut result = RunResult {
        plugin: plugin.name().to_owned(),
        kind: Some(plugin.kind()),
        verdict: "error",
        reason: String::new(),
        value: None,
        threshold: None,
        reasons: Vec::new(),
        error: None,
        duration_ms: 0.0,
    };
    let outcome = match plugin.kind() {
        PluginKind::HealthCheck => match plugin.check_health(&ctx).await {
            Ok(report) => {
                result.reason = report.reason;
                result.value = report.value;
                result.threshold = report.threshold;
                let (verdict, outcome) = match report.status {
                    HealthStatus::Healthy => ("healthy", Outcome::Done),
                    HealthStatus::Unhealthy => ("unhealthy", Outcome::Failed),
                    HealthStatus::Unknown => ("unknown", Outcome::Blocked),
                };
                result.verdict = verdict;
                outcome
            }
            Err(e) => errored(&mut result, &e, "error"),
        },
        PluginKind::CompatCheck => match plugin.check_compat(&ctx).await {
            Ok(report) => {
                result.reason = report.reasons.join("; ");
                result.reasons = report.reasons;
                if report.compatible {
                    result.verdict = "compatible";
                    Outcome::Done
                } else {
                    result.verdict = "incompatible";
                    Outcome::Failed
                }
            }
            Err(e) => errored(&mut result, &e, "error"),
        },
        PluginKind::Notifier => {
            let event = Event {
                kind: EventKind::Test,
                deploy_id: format!("test-{}", std::process::id()),
                timestamp: crate::context::now_rfc3339(),
                message: format!(
                    "test event from `tagship plugin run` for {} {}",
                    ctx.component, ctx.version
                ),
                context: ctx,
            };
            match plugin.notify(&event).await {
                Ok(()) => {
                    result.verdict = "delivered";
                    result.reason = "the notifier accepted the test event".into();
                    Outcome::Done
                }
                Err(e @ PluginError::Returned { .. }) => errored(&mut result, &e, "failed"),
                Err(e) => errored(&mut result, &e, "error"),
            }
        }
    };
    result.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    terminal::stdout_json(&result);
    Ok(outcome)
}

fn errored(result: &mut RunResult, error: &PluginError, verdict: &'static str) -> Outcome {
    result.verdict = verdict;
    result.reason = error.to_string();
    result.error = Some(error.kind());
    tracing::error!("{error}");
    error.outcome()
}
