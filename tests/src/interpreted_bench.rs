//! The `interpreted` part of `deploy-bench`: what a plugin written in Python or JavaScript
//! costs the runner, by compiler. For each example component (`tests/plugins/build-examples`:
//! `python-health.wasm`, `js-health.wasm`, and `js-quickjs-health.wasm` when built) and each of
//! Cranelift and Winch (`TAGSHIP_PLUGIN_COMPILER`):
//!
//! - first compile: `tagship plugin precompile` into an empty cache (wall, CPU, peak RSS of the
//!   process);
//! - cached load: `tagship plugin precompile` again, which reads, hashes, deserialises, checks
//!   and links the cached component (the time it reports for the plugin, in-process);
//! - one call: `tagship plugin run` against the environment's Prometheus (`/-/healthy`): the
//!   `duration_ms` of the call it reports (a fresh sandbox, the first of the process), and the
//!   whole process's wall time and peak RSS.
//!
//! The whole-deploy figure (one Python check in a bake) is in `deploy_bench`, which owns the
//! places.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::deploy_bench::{Spread, Usage, megabytes, path_str, run_timed};

/// The compilers measured, as `TAGSHIP_PLUGIN_COMPILER` names them.
pub const COMPILERS: [&str; 2] = ["cranelift", "winch"];

/// The example components of `dir` this part measures (those that are there), by name.
pub fn examples(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for name in ["python-health", "js-health", "js-quickjs-health"] {
        let path = dir.join(format!("{name}.wasm"));
        if path.is_file() {
            found.push((name.to_owned(), path));
        }
    }
    if found.is_empty() {
        bail!(
            "no example plugins in `{}`\nhint: tests/plugins/build-examples {}",
            dir.display(),
            dir.display()
        );
    }
    Ok(found)
}

/// What one example cost under one compiler.
#[derive(Debug, Clone)]
pub struct Row {
    /// The example's name.
    pub example: String,
    /// Its size, bytes.
    pub size: u64,
    /// The compiler.
    pub compiler: &'static str,
    /// `plugin precompile` into an empty cache, per run.
    pub first: Vec<Usage>,
    /// The cached load as `plugin precompile` reports it (in-process), ms per run.
    pub cached_ms: Vec<f64>,
    /// `plugin run`: the call's own `duration_ms`, per run.
    pub call_ms: Vec<f64>,
    /// `plugin run` as a whole process, per run.
    pub run: Vec<Usage>,
    /// The size of the compiled artifact in the cache, bytes.
    pub artifact: u64,
}

/// Measures `example` under `compiler`: `first_runs` first compiles (each into a new cache
/// below `scratch`), then `runs` cached loads and `runs` calls against `url` (granted `grant`).
///
/// # Errors
///
/// When a run fails or prints what this does not understand.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
pub fn measure(
    tagship: &Path,
    (name, path): &(String, PathBuf),
    compiler: &'static str,
    first_runs: usize,
    runs: usize,
    (url, grant): (&str, &str),
    scratch: &Path,
) -> anyhow::Result<Row> {
    let wasm = path_str(path)?;
    let mut row = Row {
        example: name.clone(),
        size: std::fs::metadata(path)?.len(),
        compiler,
        first: Vec::new(),
        cached_ms: Vec::new(),
        call_ms: Vec::new(),
        run: Vec::new(),
        artifact: 0,
    };
    let mut cache = PathBuf::new();
    for i in 0..first_runs.max(1) {
        cache = scratch.join(format!("{name}-{compiler}-{i}"));
        let _ = std::fs::remove_dir_all(&cache);
        eprintln!("deploy-bench: interpreted: {name}, {compiler}, first compile {i}");
        let ran = run_timed(
            tagship,
            &["plugin", "precompile", wasm],
            &[
                ("TAGSHIP_CACHE_DIR", path_str(&cache)?),
                ("TAGSHIP_PLUGIN_COMPILER", compiler),
            ],
        )?;
        let said = ran.said();
        if ran.code != 0 || !said.contains("compiled into the cache") {
            bail!("plugin precompile of {name} ({compiler}) failed:\n{said}");
        }
        match reported_compiler(&said) {
            Some(used) if used == compiler => {}
            Some(used) => bail!("asked for {compiler}, tagship compiled with {used}:\n{said}"),
            None => row.compiler = "cranelift (no choice yet)",
        }
        row.first.push(ran.usage);
    }
    row.artifact = std::fs::read_dir(cache.join("plugins"))?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let envs = [
        ("TAGSHIP_CACHE_DIR", path_str(&cache)?),
        ("TAGSHIP_PLUGIN_COMPILER", compiler),
    ];
    let input = scratch.join("context.json");
    std::fs::write(
        &input,
        r#"{"component":"registry","version":"v3.1.0","stage":"gstg-cny","environment":"gstg"}"#,
    )?;
    let config = format!("url={url}");
    for i in 0..runs {
        eprintln!("deploy-bench: interpreted: {name}, {compiler}, cached load and call {i}");
        let ran = run_timed(tagship, &["plugin", "precompile", wasm], &envs)?;
        let said = ran.said();
        if ran.code != 0 || !said.contains("already in the cache") {
            bail!("cached plugin precompile of {name} ({compiler}) failed:\n{said}");
        }
        row.cached_ms.push(reported_ms(&said)?);

        let ran = run_timed(
            tagship,
            &[
                "plugin",
                "run",
                wasm,
                "--input",
                path_str(&input)?,
                "--config",
                &config,
                "--allow-host",
                grant,
            ],
            &envs,
        )?;
        let said = ran.said();
        let json = printed_json(&said)
            .with_context(|| format!("plugin run of {name} printed no JSON:\n{said}"))?;
        if ran.code != 0 || json["verdict"] != "healthy" {
            bail!("plugin run of {name} ({compiler}) was not healthy:\n{said}");
        }
        row.call_ms.push(
            json["duration_ms"]
                .as_f64()
                .context("plugin run printed no duration_ms")?,
        );
        row.run.push(ran.usage);
    }
    Ok(row)
}

/// The JSON object `plugin run` printed (pretty, over several lines, among log lines).
fn printed_json(said: &str) -> Option<serde_json::Value> {
    let lines: Vec<&str> = said.lines().collect();
    let start = lines.iter().position(|l| *l == "{")?;
    let end = start + lines[start..].iter().position(|l| *l == "}")?;
    serde_json::from_str(&lines[start..=end].join("\n")).ok()
}

/// The time of a `plugin precompile` line: `(N ms, COMPILER)`, or `(N.N s)` from a tagship
/// before the compiler choice.
fn reported_ms(said: &str) -> anyhow::Result<f64> {
    let line = said
        .lines()
        .find(|l| l.contains("the cache ("))
        .context("no `the cache (` line")?;
    let after = &line[line.find("the cache (").context("no time")? + "the cache (".len()..];
    if let Some((number, _)) = after.split_once(" ms") {
        return Ok(number.trim().parse()?);
    }
    let (number, _) = after.split_once(" s)").context("no ` ms` nor ` s)`")?;
    Ok(number.trim().parse::<f64>()? * 1e3)
}

/// The compiler a `plugin precompile` line names; `None` from a tagship before the choice
/// (which compiles everything with Cranelift).
fn reported_compiler(said: &str) -> Option<&'static str> {
    let line = said.lines().find(|l| l.contains("the cache ("))?;
    COMPILERS
        .into_iter()
        .find(|c| line.ends_with(&format!(", {c})")))
}

/// The Markdown table of `rows`.
pub fn write(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "\n### Plugins in Python and JavaScript, by compiler\n\n\
         The example components of `tests/plugins/build-examples`. First compile: `tagship plugin \
         precompile` into an empty cache (the process). Cached load: the same with the cache \
         filled, as it reports the plugin's own time (read, blake3, deserialise, check, link). \
         Call: `tagship plugin run` against Prometheus `/-/healthy`, the call's `duration_ms` (a \
         fresh sandbox, the process's first), and the process's wall and peak RSS. Medians [min–max].\n\n\
         | component | size | compiler | first compile: wall | CPU | peak RSS | artifact | cached load | call | `plugin run`: wall | peak RSS |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.1} MB | {} | {} | {} | {} | {:.1} MB | {} | {} | {} | {} |",
            r.example,
            mb_of(r.size),
            r.compiler,
            spread(
                &r.first.iter().map(|u| secs(u.wall)).collect::<Vec<_>>(),
                " s"
            ),
            spread(
                &r.first.iter().map(|u| secs(u.cpu)).collect::<Vec<_>>(),
                " s"
            ),
            spread(
                &r.first
                    .iter()
                    .map(|u| megabytes(u.rss_kib))
                    .collect::<Vec<_>>(),
                " MB"
            ),
            mb_of(r.artifact),
            spread(&r.cached_ms, " ms"),
            spread(&r.call_ms, " ms"),
            spread(
                &r.run.iter().map(|u| secs(u.wall) * 1e3).collect::<Vec<_>>(),
                " ms"
            ),
            spread(
                &r.run
                    .iter()
                    .map(|u| megabytes(u.rss_kib))
                    .collect::<Vec<_>>(),
                " MB"
            ),
        );
    }
}

/// `median [min–max]` of `values`, one decimal and `unit`.
fn spread(values: &[f64], unit: &str) -> String {
    Spread::of(values).map_or_else(|| "—".to_owned(), |s| s.show(|x| format!("{x:.1}{unit}")))
}

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

#[allow(clippy::cast_precision_loss, reason = "sizes far below 2^52")]
fn mb_of(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_precompile_line_gives_its_time_and_compiler() {
        let said = "plugins/x.wasm: plugins/x.wasm already in the cache (23 ms, winch)\ncache: /c";
        assert!((reported_ms(said).unwrap() - 23.0).abs() < 1e-9);
        assert_eq!(reported_compiler(said), Some("winch"));
        let before = "x.wasm: x.wasm compiled into the cache (12.3 s)\ncache: /c";
        assert!((reported_ms(before).unwrap() - 12_300.0).abs() < 1e-6);
        assert_eq!(reported_compiler(before), None);
        assert!(reported_ms("nothing").is_err());
    }

    #[test]
    fn the_printed_json_is_found_among_log_lines() {
        let said = " INFO x\n{\n  \"verdict\": \"healthy\",\n  \"duration_ms\": 2.5\n}\n WARN y";
        let json = printed_json(said).unwrap();
        assert_eq!(json["verdict"], "healthy");
        assert!(printed_json("no json").is_none());
    }
}
