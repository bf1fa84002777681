//! Plugins written in Python and JavaScript, built as a team builds them (componentize-py,
//! componentize-js; `tests/plugins/build-examples`), run by the real binary: through
//! `tagship plugin run`, and as bake checks of a deploy on the local cluster after
//! `tagship plugin precompile` filled the cache, so that the deploy compiles nothing.
//!
//! The components take a minute to build and need Python, Node and the package registries, so
//! these tests are `#[ignore]`d in a plain `cargo test`; `tests/run` builds the components and
//! runs them:
//!
//! ```sh
//! tests/plugins/build-examples /tmp/example-plugins
//! TAGSHIP_EXAMPLE_PLUGINS=/tmp/example-plugins cargo test -p tagship --test interpreted_plugins -- --ignored
//! ```
//!
//! The deploy tests also need the local environment (`tests/cluster/up`, then its `env` file).

#[path = "support/site.rs"]
mod site;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use site::{Ran, Site, StageSpec, deploy, image_of, path_str, run, tagship};

const CTX: &str =
    r#"{"component":"registry","version":"v3.1.0","stage":"gstg-cny","environment":"gstg"}"#;

const NEEDS: &str = "needs the Python and JavaScript example plugins: tests/plugins/build-examples DIR, then TAGSHIP_EXAMPLE_PLUGINS=DIR (tests/run does both)";

/// The four example components, by the names `tests/plugins/build-examples` gives them.
const EXAMPLES: [&str; 4] = ["python-health", "python-raises", "js-health", "js-throws"];

/// The component file of example `name`; panics saying how to build it when it is missing.
fn example(name: &str) -> PathBuf {
    let dir = std::env::var_os("TAGSHIP_EXAMPLE_PLUGINS")
        .unwrap_or_else(|| panic!("TAGSHIP_EXAMPLE_PLUGINS is not set: {NEEDS}"));
    let path = Path::new(&dir).join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing: {NEEDS}", path.display());
    path
}

/// `tagship plugin precompile` of every example into the cache the tests' runs share (the
/// first test to get here does it; the others wait). What it printed, for the deploy tests.
fn precompiled() -> &'static str {
    static SAID: OnceLock<String> = OnceLock::new();
    SAID.get_or_init(|| {
        let ran = precompile_examples();
        assert_eq!(ran.code, 0, "plugin precompile: {}", ran.said);
        eprintln!(
            "plugin precompile of the 4 examples, {:?}:\n{}",
            ran.took, ran.said
        );
        ran.said
    })
}

/// `tagship plugin precompile` of the four examples into the tests' shared cache.
fn precompile_examples() -> Ran {
    let paths: Vec<PathBuf> = EXAMPLES.iter().map(|name| example(name)).collect();
    let mut args = vec!["plugin", "precompile"];
    args.extend(paths.iter().map(|p| path_str(p)));
    run(&mut tagship(&args))
}

/// `tagship plugin run EXAMPLE --input CONTEXT ARGS…`, after the cache is filled: exit code and
/// the printed JSON result.
fn plugin_run(name: &str, args: &[&str]) -> (i32, Value, String) {
    // One file per call: tests run in parallel, and a file being rewritten reads as empty.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    precompiled();
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let input = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "interpreted-ctx-{}-{call}.json",
        std::process::id()
    ));
    std::fs::write(&input, CTX).expect("write the context");
    let wasm = example(name);
    let mut all = vec![
        "plugin",
        "run",
        path_str(&wasm),
        "--input",
        path_str(&input),
    ];
    all.extend_from_slice(args);
    let ran = run(&mut tagship(&all));
    let json = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("{name}: stdout is not JSON ({e}): {}", ran.said));
    (ran.code, json, ran.said)
}

/// The real Prometheus of the local environment, whose `/-/healthy` answers 200: what the
/// health examples GET. `(url, host:port to grant)`.
fn prometheus_health() -> (String, String) {
    let base = site::env("TAGSHIP_PROMETHEUS_URL");
    let grant = base.trim_start_matches("http://").to_owned();
    (format!("{base}/-/healthy"), grant)
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples): tests/run runs it"]
fn precompile_fills_the_cache_so_a_run_compiles_nothing() {
    let said = precompiled();
    for name in EXAMPLES {
        assert!(said.contains(&format!("{name}.wasm")), "{name}: {said}");
    }
    // A second precompile finds all four in the cache.
    let again = precompile_examples();
    assert_eq!(again.code, 0, "{}", again.said);
    assert!(
        again.said.matches("already in the cache").count() == 4,
        "{}",
        again.said
    );
    // And a run does not compile: it says nothing about compiling.
    let (code, _, said) = plugin_run("python-raises", &[]);
    assert_eq!(code, 5, "{said}");
    assert!(!said.contains("compiling"), "{said}");
}

/// `plugin run` of the example `plugin` fails with its exception's `text` as the check's error (exit 5),
/// not with what the runtime would say of an abort (`wrong`).
fn fails_with(plugin: &str, text: &str, wrong: &str) {
    let (code, json, said) = plugin_run(plugin, &[]);
    assert_eq!(code, 5, "{said}");
    assert_eq!(json["verdict"], "error", "{said}");
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(text), "{reason}");
    assert!(!reason.contains(wrong), "{reason}");
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples): tests/run runs it"]
fn a_python_value_error_is_the_checks_error_with_its_type_message_and_line() {
    fails_with(
        "python-raises",
        "ValueError: the registry said no (at app.py:21)",
        "panicked",
    );
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples): tests/run runs it"]
fn a_javascript_error_is_the_checks_error_with_its_message_and_place() {
    fails_with(
        "js-throws",
        "Error: the registry said no (at app.js:14:",
        "without a message",
    );
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples): tests/run runs it"]
fn the_python_and_javascript_health_checks_judge_a_real_answer_and_need_their_grant() {
    let (url, grant) = prometheus_health();
    let missing = format!("{url}-not-there");
    for name in ["python-health", "js-health"] {
        // 200 from the real Prometheus: healthy.
        let (code, json, said) = plugin_run(
            name,
            &["--config", &format!("url={url}"), "--allow-host", &grant],
        );
        assert_eq!(
            (code, json["verdict"].as_str()),
            (0, Some("healthy")),
            "{name}: {said}"
        );
        assert!(
            json["reason"].as_str().unwrap().contains("HTTP 200"),
            "{name}: {said}"
        );

        // 404 from the same server: unhealthy, with the status.
        let (code, json, said) = plugin_run(
            name,
            &[
                "--config",
                &format!("url={missing}"),
                "--allow-host",
                &grant,
            ],
        );
        assert_eq!(
            (code, json["verdict"].as_str()),
            (1, Some("unhealthy")),
            "{name}: {said}"
        );
        assert!(
            json["reason"].as_str().unwrap().contains("404"),
            "{name}: {said}"
        );

        // Nothing listening (a refused connection): the service is not serving, a verdict too.
        let (code, json, said) = plugin_run(
            name,
            &[
                "--config",
                "url=http://127.0.0.1:1/",
                "--allow-host",
                "127.0.0.1:1",
            ],
        );
        assert_eq!(
            (code, json["verdict"].as_str()),
            (1, Some("unhealthy")),
            "{name}: {said}"
        );
        assert!(
            json["reason"].as_str().unwrap().contains("is not serving"),
            "{name}: {said}"
        );

        // No grant: the sandbox denies the request, which is the check's error, not a verdict.
        let (code, json, said) = plugin_run(name, &["--config", &format!("url={url}")]);
        assert_eq!(
            (code, json["verdict"].as_str()),
            (5, Some("error")),
            "{name}: {said}"
        );
        assert!(
            json["reason"].as_str().unwrap().contains("denied"),
            "{name}: {said}"
        );
    }
}

/// A site of two stages, canary then main, each baked by `checks` (plugins defined in `plugins`).
fn baked_deploy(test: &str, plugins: &str, checks: &str) -> (Site, site::Ran) {
    precompiled();
    let site = Site::builder(test)
        .stages(vec![
            StageSpec::auto("gstg-cny", "gstg"),
            StageSpec::auto("gstg", "gstg"),
        ])
        .create();
    let bake =
        format!("checks = {checks}\nduration = \"4s\"\ninterval = \"1s\"\nfailure_limit = 1");
    let config = site
        .config()
        .without_health()
        .toml(plugins)
        .bake("gstg-cny", &bake)
        .bake("gstg", &bake)
        .write();
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    (site, ran)
}

fn health_plugin(name: &str, example_name: &str) -> String {
    let (url, grant) = prometheus_health();
    format!(
        "[plugins.{name}]\nsource = \"{}\"\nallow_hosts = [\"{grant}\"]\nconfig = {{ url = \"{url}\" }}\n",
        path_str(&example(example_name))
    )
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples) and the local environment: tests/run runs it"]
fn a_deploy_baked_by_python_and_javascript_checks_goes_through_without_compiling() {
    // Given both stages baked by the Python and the JavaScript health check, precompiled
    let plugins = health_plugin("py", "python-health") + &health_plugin("js", "js-health");

    // When v2.0.0 is deployed
    let (site, ran) = baked_deploy("interpok", &plugins, r#"["py", "js"]"#);

    // Then both stages run it, and no plugin was compiled during the deploy
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v2.0.0"));
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    assert!(!ran.said.contains("compiling"), "{}", ran.said);
    assert!(!ran.said.contains("plugin precompile"), "{}", ran.said);
}

/// A deploy whose bake runs the example `plugin` alone: the canary rolled back, the main stage
/// never reached, the lock released, and the exception's `text` in what the deploy said.
fn bake_fails_and_rolls_back(site_name: &str, plugin: &str, text: &str) {
    let plugins = format!(
        "[plugins.failing]\nsource = \"{}\"\n",
        path_str(&example(plugin))
    );
    let (site, ran) = baked_deploy(site_name, &plugins, r#"["failing"]"#);
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(ran.said.contains(text), "{}", ran.said);
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"), "rolled back");
    assert_eq!(site.image("gstg"), image_of("v1.0.0"), "never reached");
    assert_eq!(site.lease_holder("gstg"), "", "the lock is released");
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples) and the local environment: tests/run runs it"]
fn a_python_check_that_raises_in_the_bake_rolls_the_canary_back_and_says_why() {
    bake_fails_and_rolls_back(
        "interpraise",
        "python-raises",
        "ValueError: the registry said no (at app.py:21)",
    );
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples) and the local environment: tests/run runs it"]
fn a_javascript_check_that_throws_in_the_bake_rolls_the_canary_back_and_says_why() {
    bake_fails_and_rolls_back(
        "interpthrow",
        "js-throws",
        "Error: the registry said no (at app.js:14:",
    );
}
