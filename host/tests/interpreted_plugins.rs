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

use site::{Site, StageSpec, deploy, image_of, run, tagship};

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

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
        let paths: Vec<String> = EXAMPLES
            .iter()
            .map(|name| example(name).display().to_string())
            .collect();
        let mut args = vec!["plugin", "precompile"];
        args.extend(paths.iter().map(String::as_str));
        let ran = run(&mut tagship(&args));
        assert_eq!(ran.code, 0, "plugin precompile: {}", ran.said);
        eprintln!(
            "plugin precompile of the 4 examples, {:?}:\n{}",
            ran.took, ran.said
        );
        ran.said
    })
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
    let paths: Vec<String> = EXAMPLES
        .iter()
        .map(|name| example(name).display().to_string())
        .collect();
    let mut args = vec!["plugin", "precompile"];
    args.extend(paths.iter().map(String::as_str));
    let again = run(&mut tagship(&args));
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

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples): tests/run runs it"]
fn a_python_value_error_is_the_checks_error_with_its_type_message_and_line() {
    let (code, json, said) = plugin_run("python-raises", &[]);
    assert_eq!(code, 5, "{said}");
    assert_eq!(json["verdict"], "error", "{said}");
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("ValueError: the registry said no (at app.py:21)"),
        "{reason}"
    );
    assert!(!reason.contains("panicked"), "{reason}");
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples): tests/run runs it"]
fn a_javascript_error_is_the_checks_error_with_its_message_and_place() {
    let (code, json, said) = plugin_run("js-throws", &[]);
    assert_eq!(code, 5, "{said}");
    assert_eq!(json["verdict"], "error", "{said}");
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Error: the registry said no (at app.js:14:"),
        "{reason}"
    );
    assert!(!reason.contains("without a message"), "{reason}");
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
        example(example_name).display()
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

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples) and the local environment: tests/run runs it"]
fn a_python_check_that_raises_in_the_bake_rolls_the_canary_back_and_says_why() {
    let plugins = format!(
        "[plugins.raises]\nsource = \"{}\"\n",
        example("python-raises").display()
    );
    let (site, ran) = baked_deploy("interpraise", &plugins, r#"["raises"]"#);
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said
            .contains("ValueError: the registry said no (at app.py:21)"),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"), "rolled back");
    assert_eq!(site.image("gstg"), image_of("v1.0.0"), "never reached");
    assert_eq!(site.lease_holder("gstg"), "", "the lock is released");
}

#[test]
#[ignore = "needs the Python and JavaScript example plugins (tests/plugins/build-examples) and the local environment: tests/run runs it"]
fn a_javascript_check_that_throws_in_the_bake_rolls_the_canary_back_and_says_why() {
    let plugins = format!(
        "[plugins.throws]\nsource = \"{}\"\n",
        example("js-throws").display()
    );
    let (site, ran) = baked_deploy("interpthrow", &plugins, r#"["throws"]"#);
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said
            .contains("Error: the registry said no (at app.js:14:"),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg-cny"), image_of("v1.0.0"), "rolled back");
    assert_eq!(site.image("gstg"), image_of("v1.0.0"), "never reached");
}
