//! Everything that can go wrong loading or calling a plugin, each naming the plugin.

use std::path::PathBuf;
use std::time::Duration;

use crate::exit::Outcome;

/// A plugin could not be loaded, or a call did not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("cannot read plugin file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `builtin:NAME` names no built-in.
    #[error("there is no built-in plugin `{name}`; the built-ins are: {known}")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// The bytes are not WebAssembly at all.
    #[error(
        "`{plugin}` is not a WebAssembly file (it does not start with the `\\0asm` magic bytes)"
    )]
    NotWasm {
        /// The plugin's source.
        plugin: String,
    },
    /// A core module, not a component.
    #[error(
        "`{plugin}` is a core WebAssembly module, not a component: build it for the `wasm32-wasip2` target (see plugins/README.md)"
    )]
    CoreModule {
        /// The plugin's source.
        plugin: String,
    },
    /// wasmtime refused to compile it.
    #[error("`{plugin}` could not be compiled: {reason}")]
    Compile {
        /// The plugin's source.
        plugin: String,
        /// The compiler's message.
        reason: String,
    },
    /// It exports none of the plugin interfaces.
    #[error(
        "`{plugin}` is not a tagship plugin: it exports {exports}, but a plugin exports one of tagship:plugin/health, tagship:plugin/notify or tagship:plugin/compat @{supported}"
    )]
    NoKnownWorld {
        /// The plugin's source.
        plugin: String,
        /// What it exports instead.
        exports: String,
        /// The API version this tagship supports.
        supported: String,
    },
    /// It was built against an API version this tagship cannot serve.
    #[error(
        "`{plugin}` was built against {found}, but this tagship supports tagship:plugin@{supported}; rebuild it with the SDK for {supported}"
    )]
    IncompatibleApi {
        /// The plugin's source.
        plugin: String,
        /// What it exports: `tagship:plugin@VERSION`, or the export that has no version.
        found: String,
        /// The version this tagship supports.
        supported: String,
    },
    /// It exports the interface of its kind, but its function has other types than the host's.
    #[error(
        "`{plugin}` exports `{function}` as `{found}`, but tagship calls `{expected}` (wit/tagship.wit); rebuild it against the WIT of this tagship"
    )]
    Signature {
        /// The plugin's source.
        plugin: String,
        /// `interface#function`.
        function: String,
        /// What it exports.
        found: String,
        /// What the host calls.
        expected: String,
    },
    /// It exports the interfaces of more than one kind.
    #[error(
        "`{plugin}` exports {exports}: a plugin is one kind (health check, notifier or compat check); build one component per kind"
    )]
    SeveralKinds {
        /// The plugin's source.
        plugin: String,
        /// The kinds' exports.
        exports: String,
    },
    /// It needs an import the sandbox does not provide (e.g. `wasi:http`).
    #[error(
        "`{plugin}` imports `{import}`, which the tagship sandbox does not provide ({reason}); {instead}"
    )]
    Link {
        /// The plugin's source.
        plugin: String,
        /// The import the sandbox lacks.
        import: String,
        /// wasmtime's message.
        reason: String,
        /// What to use instead.
        instead: &'static str,
    },
    /// Configured as one kind, but it is another.
    #[error("plugin `{plugin}` is a {actual} plugin and cannot be used as a {expected}")]
    WrongKind {
        /// The plugin's name.
        plugin: String,
        /// What it is.
        actual: &'static str,
        /// What was wanted.
        expected: &'static str,
    },
    /// A setting of the plugin (grant, limit) is invalid.
    #[error("plugin `{plugin}`: {reason}")]
    Settings {
        /// The plugin's name.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The guest used up its CPU time.
    #[error("plugin `{plugin}` exceeded its CPU limit of {}s and was stopped", limit.as_secs_f32())]
    CpuLimit {
        /// The plugin's name.
        plugin: String,
        /// The limit.
        limit: Duration,
    },
    /// The guest asked for more memory than its limit.
    #[error("plugin `{plugin}` exceeded its memory limit of {} MiB (it asked for {} MiB) and was stopped", limit >> 20, asked >> 20)]
    MemoryLimit {
        /// The plugin's name.
        plugin: String,
        /// The limit in bytes.
        limit: usize,
        /// The size asked for.
        asked: usize,
    },
    /// The call took longer than its wall-clock limit (typically waiting on HTTP).
    #[error("plugin `{plugin}` did not finish within its wall-clock limit of {}s", limit.as_secs_f32())]
    WallTimeout {
        /// The plugin's name.
        plugin: String,
        /// The limit.
        limit: Duration,
    },
    /// Unbounded recursion.
    #[error("plugin `{plugin}` overflowed its stack (unbounded recursion?) and was stopped")]
    StackOverflow {
        /// The plugin's name.
        plugin: String,
    },
    /// A Rust panic (or another abort) in the guest.
    #[error("plugin `{plugin}` panicked: {message}")]
    Panicked {
        /// The plugin's name.
        plugin: String,
        /// The panic message, when the guest printed one.
        message: String,
    },
    /// Any other trap.
    #[error("plugin `{plugin}` crashed: {trap}")]
    Trapped {
        /// The plugin's name.
        plugin: String,
        /// wasmtime's description.
        trap: String,
    },
    /// The result is over the size limit.
    #[error("plugin `{plugin}` returned {size} bytes, over its result limit of {limit} bytes")]
    ResultTooLarge {
        /// The plugin's name.
        plugin: String,
        /// The size returned.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin ran and returned an error (e.g. its request was denied).
    #[error("plugin `{plugin}` returned an error: {message}")]
    Returned {
        /// The plugin's name.
        plugin: String,
        /// Its message, secrets redacted.
        message: String,
    },
    /// The sandbox could not be made (e.g. the instance pool is exhausted).
    #[error("plugin `{plugin}` could not be started: {reason}")]
    Instantiate {
        /// The plugin's name.
        plugin: String,
        /// Why.
        reason: String,
    },
}

impl PluginError {
    /// The documented exit code family of this error: a plugin that cannot be loaded is a usage
    /// error (2); anything that went wrong while it ran is a plugin error (5).
    pub fn outcome(&self) -> Outcome {
        match self {
            PluginError::Read { .. }
            | PluginError::UnknownBuiltin { .. }
            | PluginError::NotWasm { .. }
            | PluginError::CoreModule { .. }
            | PluginError::Compile { .. }
            | PluginError::NoKnownWorld { .. }
            | PluginError::IncompatibleApi { .. }
            | PluginError::Signature { .. }
            | PluginError::SeveralKinds { .. }
            | PluginError::Link { .. }
            | PluginError::WrongKind { .. }
            | PluginError::Settings { .. } => Outcome::Usage,
            PluginError::CpuLimit { .. }
            | PluginError::MemoryLimit { .. }
            | PluginError::WallTimeout { .. }
            | PluginError::StackOverflow { .. }
            | PluginError::Panicked { .. }
            | PluginError::Trapped { .. }
            | PluginError::ResultTooLarge { .. }
            | PluginError::Returned { .. }
            | PluginError::Instantiate { .. } => Outcome::PluginError,
        }
    }

    /// A short machine-readable name of the error, for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Read { .. } => "read",
            PluginError::UnknownBuiltin { .. } => "unknown-builtin",
            PluginError::NotWasm { .. } => "not-wasm",
            PluginError::CoreModule { .. } => "core-module",
            PluginError::Compile { .. } => "compile",
            PluginError::NoKnownWorld { .. } => "no-known-world",
            PluginError::IncompatibleApi { .. } => "incompatible-api",
            PluginError::Signature { .. } => "signature",
            PluginError::SeveralKinds { .. } => "several-kinds",
            PluginError::Link { .. } => "link",
            PluginError::WrongKind { .. } => "wrong-kind",
            PluginError::Settings { .. } => "settings",
            PluginError::CpuLimit { .. } => "cpu-limit",
            PluginError::MemoryLimit { .. } => "memory-limit",
            PluginError::WallTimeout { .. } => "wall-timeout",
            PluginError::StackOverflow { .. } => "stack-overflow",
            PluginError::Panicked { .. } => "panicked",
            PluginError::Trapped { .. } => "trapped",
            PluginError::ResultTooLarge { .. } => "result-too-large",
            PluginError::Returned { .. } => "returned-error",
            PluginError::Instantiate { .. } => "instantiate",
        }
    }
}
