//! The WebAssembly component host: loads plugins and runs each call in a fresh sandbox.
//!
//! A plugin is loaded once ([`PluginHost::load`]): its bytes are read (or taken from the
//! embedded built-ins), its kind and API version are read from its exports, it is compiled (or
//! taken from the on-disk cache) and pre-instantiated against the sandbox's imports. Each call
//! then gets a new store from that pre-instance, with the plugin's limits, and is thrown away.
//!
//! This file holds the types a caller names (`Source`, `PluginKind`, `PluginSpec`); loading is
//! `host` (`PluginHost`), reading and linking a component's imports and exports `linking`, and a
//! loaded plugin's calls `call` (`Plugin`).
//!
//! Architecture invariant: this module knows nothing of deploys; it answers "what does this
//! plugin say about this context" and nothing else. It never panics on plugin behaviour: every
//! trap, limit breach and refusal becomes a [`PluginError`] naming the plugin.

mod bindings;
mod builtin;
mod engine;
mod error;
mod grants;
mod http;
mod limits;
mod names;
mod redact;
mod request;
mod sandbox;
mod signature;
mod wasm;

mod call;
mod host;
mod linking;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use builtin::builtin_names;
pub use engine::{Compiler, CompilerChoice};
pub use error::PluginError;
pub use grants::{Denial, Grants, HostGrant};
pub use limits::Limits;
pub use names::BUILTIN_NAMES;
pub use redact::{Redactor, escape, is_unsafe_char};

use bindings::{compat, health, notifier};

pub use call::Plugin;
pub use host::PluginHost;
pub use linking::{Import, ImportStatus, Inspection};

/// The plugin API version this tagship implements (the WIT package version). `cli.rs`'s
/// `VERSION` repeats it for `--version` (`concat!` takes only literals); a unit test keeps
/// the two equal.
pub const API_VERSION: &str = "0.1.0";

/// Where a plugin's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A plugin compiled into tagship, named `builtin:NAME`.
    Builtin(String),
    /// A `.wasm` component file.
    File(PathBuf),
}

impl Source {
    /// Parses `builtin:NAME` or a path.
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("builtin:") {
            Some(name) => Source::Builtin(name.to_owned()),
            None => Source::File(PathBuf::from(text)),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin(name) => write!(f, "builtin:{name}"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The kind of a plugin, read from the interface it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// World `health-check`, exports `tagship:plugin/health`.
    HealthCheck,
    /// World `notifier`, exports `tagship:plugin/notify`.
    Notifier,
    /// World `compat-check`, exports `tagship:plugin/compat`.
    CompatCheck,
}

impl PluginKind {
    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::HealthCheck => "health-check",
            PluginKind::Notifier => "notifier",
            PluginKind::CompatCheck => "compat-check",
        }
    }

    fn interface(self) -> &'static str {
        match self {
            PluginKind::HealthCheck => "health",
            PluginKind::Notifier => "notify",
            PluginKind::CompatCheck => "compat",
        }
    }

    const ALL: [PluginKind; 3] = [
        PluginKind::HealthCheck,
        PluginKind::Notifier,
        PluginKind::CompatCheck,
    ];
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// How to load one plugin: its name in the configuration, its code, settings, grants, limits.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The name the plugin is known by (its key in `tagship.toml`), used in every message.
    pub name: String,
    /// Its code.
    pub source: Source,
    /// Its configuration values (templates with `{{stage}}` etc. are rendered per call).
    pub config: BTreeMap<String, String>,
    /// What it may reach and read.
    pub grants: Grants,
    /// What it may use.
    pub limits: Limits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_a_builtin_or_a_path() {
        assert_eq!(
            Source::parse("builtin:http-health"),
            Source::Builtin("http-health".into())
        );
        assert_eq!(Source::parse("./p.wasm"), Source::File("./p.wasm".into()));
    }
}
