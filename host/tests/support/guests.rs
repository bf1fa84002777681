//! The guest programs of `plugins/test-programs` (built by the build script) and what loading
//! them takes: shared by the sandbox suites (`sandbox.rs`, `hostile.rs`).

#![allow(dead_code, reason = "each test crate uses part of this")]

use std::collections::BTreeMap;
use std::path::PathBuf;

use tagship::context::DeployContext;
use tagship::plugins::{Grants, Limits, Plugin, PluginHost, PluginSpec, Source};

/// The component file of test program `name` (`tp-infinite-loop`).
pub fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("TAGSHIP_GUESTS_DIR")).join(format!("{}.wasm", name.replace('-', "_")))
}

/// A deploy context of the canary stage.
pub fn ctx() -> DeployContext {
    serde_json::from_str(
        r#"{"component":"registry","version":"v3.1.0","stage":"gstg-cny","environment":"gstg"}"#,
    )
    .expect("a deploy context")
}

/// A new host each time; compiled guests are shared through an on-disk cache named `cache`
/// (one per suite), since compiling with a debug build of Cranelift takes seconds.
pub fn host(cache: &str) -> PluginHost {
    PluginHost::with_cache_dir(Some(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(cache),
    ))
}

/// The spec of test program `name` with `config`, `grants` and `limits`.
pub fn spec(name: &str, config: &[(&str, &str)], grants: Grants, limits: Limits) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        source: Source::File(guest(name)),
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        grants,
        limits,
    }
}

/// Test program `name` loaded into `host`; panics naming it when it cannot be.
pub fn load(
    host: &PluginHost,
    name: &str,
    config: &[(&str, &str)],
    grants: Grants,
    limits: Limits,
) -> Plugin {
    host.load(spec(name, config, grants, limits))
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}
