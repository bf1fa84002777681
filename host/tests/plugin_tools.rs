//! The plugin author's tools on what other languages build: `plugin inspect` says
//! how the sandbox serves each import and refuses a component that cannot link, naming the
//! import and what to use instead; an abort without a Rust panic message is explained by what
//! the guest last wrote to stderr; `plugin precompile` fills the cache ahead of a deploy.

#[path = "support/plugin_run.rs"]
mod plugin_run;

use std::process::Output;

use plugin_run::{cache, guest, tagship};

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_component_importing_wasi_http_is_refused_by_inspect_and_run_naming_the_import() {
    let wasm = guest("tp-wasi-http");
    for args in [
        vec!["plugin", "inspect", wasm.as_str()],
        vec!["plugin", "run", wasm.as_str(), "--input", "-"],
    ] {
        let out = tagship(&args, &cache("tools-cache"));
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for said in [
            "imports `wasi:http/outgoing-handler@0.3.0`",
            "tagship:plugin/http",
            "-d http fetch-event",
        ] {
            assert!(stderr.contains(said), "{args:?} says {said}: {stderr}");
        }
    }
}

#[test]
fn inspect_says_how_the_sandbox_serves_each_import() {
    let out = tagship(
        &["plugin", "inspect", &guest("tp-socket"), "--output", "json"],
        &cache("tools-cache"),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let status = |prefix: &str| -> Vec<String> {
        json["imports"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["name"].as_str().unwrap().starts_with(prefix))
            .map(|i| i["status"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(!status("wasi:sockets/").is_empty(), "{stdout}");
    assert!(
        status("wasi:sockets/")
            .iter()
            .all(|s| s == "denied-at-run-time"),
        "{stdout}"
    );
    assert!(
        status("tagship:plugin/").iter().all(|s| s == "provided"),
        "{stdout}"
    );
    assert!(
        status("wasi:clocks/").iter().all(|s| s == "provided"),
        "{stdout}"
    );
    // The text form says the same.
    let out = tagship(
        &["plugin", "inspect", &guest("tp-socket")],
        &cache("tools-cache"),
    );
    let (stdout, _) = text(&out);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("wasi:sockets/tcp@") && l.ends_with("denied at run time")),
        "{stdout}"
    );
}

#[test]
fn an_abort_without_a_panic_message_is_explained_by_the_last_lines_on_stderr() {
    for (via, expected) in [
        (
            "abort",
            "it aborted; the last lines it wrote to stderr: JSError: the registry said no",
        ),
        (
            "traceback",
            "Python function threw an unexpected exception (at test-programs/tp-say/src/lib.rs",
        ),
    ] {
        let out = tagship(
            &[
                "plugin",
                "run",
                &guest("tp-say"),
                "--input",
                "-",
                "--config",
                "text=JSError: the registry said no",
                "--config",
                &format!("via={via}"),
            ],
            &cache("tools-cache"),
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(5), "{via}: {stdout}{stderr}");
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let reason = json["reason"].as_str().unwrap();
        assert!(reason.contains(expected), "{via}: {reason}");
        assert!(
            reason.contains("JSError: the registry said no"),
            "{via}: the guest's own words: {reason}"
        );
        assert!(!reason.contains("Traceback"), "{via}: {reason}");
    }
}

#[test]
fn precompile_fills_the_cache_so_that_the_next_load_compiles_nothing() {
    let dir = cache("precompile-cache");
    let _ = std::fs::remove_dir_all(&dir);
    let good = guest("tp-good-health");
    let config = dir.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "[component]\nname = \"registry\"\nimage = \"registry.example.com/registry\"\n\n[plugins.good]\nsource = \"{good}\"\n\n[plugins.http]\nsource = \"builtin:http-health\"\n\n[[stage]]\nname = \"gstg\"\nenvironment = \"gstg\"\nnamespace = \"gitlab\"\nworkloads = [{{ deployment = \"gitlab-registry\" }}]\n"
        ),
    )
    .unwrap();
    let first = tagship(
        &["plugin", "precompile", "--config", config.to_str().unwrap()],
        &dir,
    );
    let (stdout, stderr) = text(&first);
    assert_eq!(first.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("[plugins.good]") && stdout.contains("compiled into the cache"),
        "{stdout}"
    );
    assert!(stdout.contains("[plugins.http]"), "{stdout}");
    let cached: Vec<_> = std::fs::read_dir(dir.join("plugins"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 2, "one artifact per plugin: {cached:?}");
    let again = tagship(&["plugin", "precompile", &good], &dir);
    let (stdout, _) = text(&again);
    assert!(stdout.contains("already in the cache"), "{stdout}");
    // A plugin that cannot be loaded is exit 2, and the others are still compiled.
    let out = tagship(
        &[
            "plugin",
            "precompile",
            &guest("tp-wasi-http"),
            &guest("tp-panic"),
        ],
        &dir,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("wasi:http"), "{stderr}");
    assert!(
        stdout.contains("tp_panic.wasm compiled into the cache"),
        "{stdout}"
    );
}
