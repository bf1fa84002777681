//! What a component imports and exports: its kind and API version read from its exports, each
//! import's status in the sandbox, and the link against the sandbox's imports, whose failure
//! names the import and what to use instead.

use std::fmt;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::host::Runtime;
use super::sandbox::State;
use super::{API_VERSION, PluginError, PluginKind, Source, escape, signature};

/// How the sandbox serves one import of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportStatus {
    /// Linked and usable: tagship's own imports, WASI clocks, random, I/O, stdout and stderr.
    Provided,
    /// Linked, so the plugin loads, but every use is refused: `wasi:sockets` (connect is
    /// `access-denied`), `wasi:filesystem` (no directory is preopened), `wasi:cli/environment`
    /// (empty), stdin (closed).
    DeniedAtRunTime,
    /// Not in the sandbox: the plugin cannot be loaded (`wasi:http`, anything unknown).
    Missing,
}

impl fmt::Display for ImportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImportStatus::Provided => "provided",
            ImportStatus::DeniedAtRunTime => "denied at run time",
            ImportStatus::Missing => "missing",
        })
    }
}

/// One import of a plugin and how the sandbox serves it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Import {
    /// The interface, e.g. `wasi:sockets/tcp@0.2.9`.
    pub name: String,
    /// How it is served.
    pub status: ImportStatus,
}

/// How the sandbox serves the import `name` (an interface name with its version). What the
/// linker holds decides in the end: an import it cannot satisfy is `Missing` whatever this says.
pub(super) fn import_status(name: &str) -> ImportStatus {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    if let Some(rest) = interface.strip_prefix("tagship:plugin/") {
        let ours = matches!(rest, "types" | "host" | "http");
        let line = semver::Version::parse(version)
            .ok()
            .zip(semver::Version::parse(API_VERSION).ok())
            .is_some_and(|(v, host)| compatible(&host, &v));
        return if ours && line {
            ImportStatus::Provided
        } else {
            ImportStatus::Missing
        };
    }
    let Some(rest) = interface.strip_prefix("wasi:") else {
        return ImportStatus::Missing;
    };
    if !version.starts_with("0.2.") {
        return ImportStatus::Missing;
    }
    let package = rest.split('/').next().unwrap_or_default();
    match (package, interface) {
        ("sockets" | "filesystem", _) | (_, "wasi:cli/environment" | "wasi:cli/stdin") => {
            ImportStatus::DeniedAtRunTime
        }
        ("cli" | "clocks" | "io" | "random", _) => ImportStatus::Provided,
        _ => ImportStatus::Missing,
    }
}

/// What a plugin that needs `import` should use instead, for a link error.
pub(super) fn instead_of(import: &str) -> &'static str {
    if import.starts_with("wasi:http") {
        "outbound HTTP goes through `tagship:plugin/http` (the SDKs' `get`/`post_json`), which checks every request against the plugin's grants; build without `wasi:http`: componentize-js with `-d http fetch-event`, componentize-py without importing `wasi:http` (e.g. `--stub-wasi` or plain `tagship_plugin.get`), Rust without the `wasi` crate's http feature"
    } else {
        "the sandbox provides `tagship:plugin/{host,http,types}` and WASI 0.2 (cli, clocks, io, random; sockets and filesystem linked but denied); rebuild without this import"
    }
}

/// What `tagship plugin inspect` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// The source as given.
    pub source: String,
    /// The kind read from its exports.
    pub kind: PluginKind,
    /// The API version it was built against.
    pub api_version: String,
    /// Every import it needs, and how the sandbox serves it.
    pub imports: Vec<Import>,
    /// Every export it provides, by name.
    pub exports: Vec<String>,
    /// Size of the wasm in bytes.
    pub size: usize,
    /// sha256 of the wasm, hex.
    pub sha256: String,
}

/// Links `component` against the sandbox's imports. A failure names the import the sandbox
/// lacks and what to use instead.
pub(super) fn link(
    runtime: &Runtime,
    component: &Component,
    source: &Source,
) -> Result<wasmtime::component::InstancePre<State>, PluginError> {
    runtime.linker.instantiate_pre(component).map_err(|e| {
        let reason = escape(&format!("{e:#}"));
        let imports: Vec<String> = component
            .component_type()
            .imports(&runtime.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        // wasmtime names the import (or the resource of it) it could not find; failing that,
        // the first import the sandbox does not serve.
        let import = imports
            .iter()
            .find(|name| reason.contains(name.as_str()))
            .or_else(|| {
                imports
                    .iter()
                    .find(|name| import_status(name) == ImportStatus::Missing)
            })
            .cloned()
            .unwrap_or_else(|| "an import".into());
        PluginError::Link {
            plugin: source.to_string(),
            instead: instead_of(&import),
            import,
            reason,
        }
    })
}

/// Reads the plugin's kind and API version from its exported interface names, such as
/// `tagship:plugin/health@0.1.0`, and checks the exported function's signature. A component
/// that exports two kinds is refused: which one a configuration meant cannot be guessed.
pub(super) fn identify(
    engine: &Engine,
    component: &Component,
    source: &Source,
) -> Result<(PluginKind, String), PluginError> {
    let supported = semver::Version::parse(API_VERSION).expect("API_VERSION is valid semver");
    let ty = component.component_type();
    let mut exports = Vec::new();
    let mut kinds: Vec<(PluginKind, &str, &str)> = Vec::new();
    for (name, item) in ty.exports(engine) {
        exports.push(format!("`{name}`"));
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            continue;
        }
        let Some(rest) = name.strip_prefix("tagship:plugin/") else {
            continue;
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if let Some(kind) = PluginKind::ALL
            .into_iter()
            .find(|k| k.interface() == interface)
        {
            kinds.push((kind, name, version));
        }
    }
    let plugin = source.to_string();
    match kinds.as_slice() {
        [] => Err(PluginError::NoKnownWorld {
            plugin,
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
            supported: API_VERSION.into(),
        }),
        [(kind, name, version)] => {
            let found = match semver::Version::parse(version) {
                Ok(found) if compatible(&supported, &found) => found,
                _ => {
                    return Err(PluginError::IncompatibleApi {
                        plugin,
                        found: if version.is_empty() {
                            format!("`{name}`, which carries no API version")
                        } else {
                            format!("tagship:plugin@{version}")
                        },
                        supported: API_VERSION.into(),
                    });
                }
            };
            signature::check(engine, &ty, name, *kind).map_err(|m| PluginError::Signature {
                plugin,
                function: m.function,
                found: m.found,
                expected: m.expected.into(),
            })?;
            Ok((*kind, found.to_string()))
        }
        several => Err(PluginError::SeveralKinds {
            plugin,
            exports: several
                .iter()
                .map(|(_, name, _)| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(" and "),
        }),
    }
}

/// Cargo's rule: same major; for 0.x the same minor; and the host must not be older than the
/// plugin (a plugin built for 0.1.3 may use what 0.1.2 lacks).
pub(super) fn compatible(host: &semver::Version, plugin: &semver::Version) -> bool {
    let same_line = if host.major == 0 {
        plugin.major == 0 && host.minor == plugin.minor
    } else {
        host.major == plugin.major
    };
    same_line && plugin <= host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn api_versions_follow_cargos_rules_for_zero_major() {
        assert!(compatible(&v("0.1.0"), &v("0.1.0")));
        assert!(compatible(&v("0.1.2"), &v("0.1.1")));
        assert!(
            !compatible(&v("0.1.0"), &v("0.1.1")),
            "a plugin newer than the host may use what it lacks"
        );
        assert!(!compatible(&v("0.1.0"), &v("0.2.0")));
        assert!(!compatible(&v("0.1.0"), &v("1.0.0")));
        assert!(compatible(&v("1.2.0"), &v("1.0.0")));
        assert!(!compatible(&v("2.0.0"), &v("1.0.0")));
    }
}
