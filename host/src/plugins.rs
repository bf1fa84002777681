//! The WebAssembly component host: loads plugins and runs each call in a fresh sandbox.
//!
//! A plugin is loaded once ([`PluginHost::load`]): its bytes are read (or taken from the
//! embedded built-ins), its kind and API version are read from its exports, it is compiled (or
//! taken from the on-disk cache) and pre-instantiated against the sandbox's imports. Each call
//! then gets a new store from that pre-instance, with the plugin's limits, and is thrown away.
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

pub use builtin::builtin_names;
pub use engine::{Compiler, CompilerChoice};
pub use error::PluginError;
pub use grants::{Denial, Grants, HostGrant};
pub use limits::Limits;
pub use names::BUILTIN_NAMES;
pub use redact::{Redactor, escape, is_unsafe_char};

use bindings::{compat, health, notifier, wit_types};
use sandbox::{PluginEnv, State};
use wasm::Fingerprint;

use crate::context::{DeployContext, Event, EventKind, WorkloadVersion};
use crate::verdict::{CompatReport, HealthReport, HealthStatus};

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
fn import_status(name: &str) -> ImportStatus {
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
fn instead_of(import: &str) -> &'static str {
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

/// A load slower than this is worth a warning naming `plugin precompile`.
const SLOW_LOAD: std::time::Duration = std::time::Duration::from_secs(2);

/// The engine and the linker plugins are instantiated with.
struct Runtime {
    engine: Engine,
    /// The compiler of `engine`.
    compiler: Compiler,
    linker: Arc<Linker<State>>,
}

/// Loads plugins; owns the engine, the linker and the compiled-component caches.
pub struct PluginHost {
    /// The engine and linker of each compiler ([`Compiler::Cranelift`] first), made on first
    /// use: a run that loads no plugin never starts an engine (nor its epoch ticker thread).
    runtimes: [OnceLock<Result<Runtime, String>>; 2],
    /// Which compiler a component gets (`TAGSHIP_PLUGIN_COMPILER`).
    choice: CompilerChoice,
    disk: Option<engine::ArtifactCache>,
    /// Components already compiled in this process, by the blake3 of their wasm.
    compiled: Mutex<HashMap<String, Component>>,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost")
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

impl Default for PluginHost {
    fn default() -> Self {
        Self::new()
    }
}

impl PluginHost {
    /// A host using the default on-disk cache (see `TAGSHIP_CACHE_DIR`).
    pub fn new() -> Self {
        Self::with_cache_dir(engine::ArtifactCache::default_dir())
    }

    /// A host caching compiled components in `dir` (`None`: memory only). Nothing is started
    /// until the first plugin is inspected or loaded, so making one cannot fail; the engine's
    /// errors come with that first use.
    pub fn with_cache_dir(dir: Option<PathBuf>) -> Self {
        PluginHost {
            runtimes: [OnceLock::new(), OnceLock::new()],
            choice: CompilerChoice::from_env(),
            disk: dir.and_then(engine::ArtifactCache::open),
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// Compiles every component with `compiler` from now on, whatever `TAGSHIP_PLUGIN_COMPILER`
    /// says (benchmarks compare the two).
    #[must_use]
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.choice = CompilerChoice::Always(compiler);
        self
    }

    /// The shared engine of `compiler` and this host's linker for it (every WASI p2 function
    /// and tagship's imports), made on the first call.
    fn runtime(&self, compiler: Compiler) -> Result<&Runtime, PluginError> {
        let index = match compiler {
            Compiler::Cranelift => 0,
            Compiler::Winch => 1,
        };
        self.runtimes[index]
            .get_or_init(|| {
                let engine = engine::shared_engine(compiler)?.clone();
                let mut linker = Linker::<State>::new(&engine);
                wasmtime_wasi::p2::add_to_linker_async(&mut linker)
                    .and_then(|()| {
                        bindings::imports::GuestImports::add_to_linker::<State, HasSelf<State>>(
                            &mut linker,
                            |s| s,
                        )
                    })
                    .map_err(|e| format!("linking the sandbox: {e}"))?;
                Ok(Runtime {
                    engine,
                    compiler,
                    linker: Arc::new(linker),
                })
            })
            .as_ref()
            .map_err(|reason| PluginError::Instantiate {
                plugin: "*".into(),
                reason: reason.clone(),
            })
    }

    /// Reads a plugin's kind, API version, imports, size and hash without running it, and
    /// checks that it links (a plugin that cannot be loaded is an error here too).
    pub fn inspect(&self, source: &Source) -> Result<Inspection, PluginError> {
        let wasm = wasm::read(source)?;
        let (component, runtime) = self.compile(source, Fingerprint::of_bytes(&wasm), true)?;
        let engine = &runtime.engine;
        let (kind, api_version) = identify(engine, &component, source)?;
        link(runtime, &component, source)?;
        let ty = component.component_type();
        Ok(Inspection {
            source: source.to_string(),
            kind,
            api_version,
            imports: ty
                .imports(engine)
                .map(|(name, _)| Import {
                    name: name.to_owned(),
                    status: import_status(name),
                })
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(name, _)| name.to_owned())
                .collect(),
            size: wasm.len(),
            // What `sha256sum` prints, to compare with; the caches key by blake3.
            sha256: hex::encode(Sha256::digest(&wasm)),
        })
    }

    /// The on-disk cache directory, when usable.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.disk.as_ref().map(engine::ArtifactCache::dir)
    }

    /// Compiles a plugin into the on-disk cache, after checking that it is a plugin that links.
    /// Whether it was there already, and the compiler its size chose.
    pub fn precompile(&self, source: &Source) -> Result<(bool, Compiler), PluginError> {
        let wasm = Fingerprint::of(source)?;
        let compiler = Compiler::for_size(self.choice, wasm.len);
        let cached = match (&self.disk, self.runtime(compiler)) {
            (Some(cache), Ok(runtime)) => cache.contains(&runtime.engine, compiler, &wasm.key),
            _ => false,
        };
        let (component, runtime) = self.compile(source, wasm, false)?;
        identify(&runtime.engine, &component, source)?;
        link(runtime, &component, source)?;
        Ok((cached, runtime.compiler))
    }

    /// Loads a plugin: checks it is a component of a known world and API version, compiles it
    /// (or takes it from the cache) and pre-instantiates it.
    pub fn load(&self, spec: PluginSpec) -> Result<Plugin, PluginError> {
        let wasm = Fingerprint::of(&spec.source)?;
        let (component, runtime) = self.compile(&spec.source, wasm, true)?;
        let (kind, _) = identify(&runtime.engine, &component, &spec.source)?;
        let link_error = |e: wasmtime::Error| PluginError::Link {
            plugin: spec.source.to_string(),
            import: "its exports".into(),
            reason: escape(&format!("{e:#}")),
            instead: "rebuild it against this tagship's wit/tagship.wit",
        };
        let pre = link(runtime, &component, &spec.source)?;
        let pre = match kind {
            PluginKind::HealthCheck => {
                Pre::Health(health::HealthCheckPre::new(pre).map_err(link_error)?)
            }
            PluginKind::Notifier => {
                Pre::Notifier(notifier::NotifierPre::new(pre).map_err(link_error)?)
            }
            PluginKind::CompatCheck => {
                Pre::Compat(compat::CompatCheckPre::new(pre).map_err(link_error)?)
            }
        };
        if spec.limits.memory_bytes > limits::MAX_MEMORY_BYTES {
            return Err(PluginError::Settings {
                plugin: spec.name,
                reason: format!(
                    "memory limit is over the maximum of {} MiB",
                    limits::MAX_MEMORY_BYTES >> 20
                ),
            });
        }
        let redactor = Redactor::new(spec.grants.secret_values());
        let http =
            http::HttpGate::new(spec.grants.clone(), spec.limits.clone()).map_err(|reason| {
                PluginError::Settings {
                    plugin: spec.name.clone(),
                    reason,
                }
            })?;
        Ok(Plugin {
            env: Arc::new(PluginEnv {
                templated: spec.config.values().any(|v| v.contains("{{")),
                name: spec.name,
                config: spec.config,
                limits: spec.limits,
                grants: spec.grants,
                redactor,
                http,
            }),
            kind,
            engine: runtime.engine.clone(),
            pre,
        })
    }

    /// The compiled component (from this process, the disk cache, or compiled now) and the
    /// runtime of the compiler it was compiled with. The bytes are read only to be compiled.
    /// `warn_slow`: warn when it took long, naming `plugin precompile` (which passes `false`:
    /// it is that advice).
    fn compile(
        &self,
        source: &Source,
        mut wasm: Fingerprint,
        warn_slow: bool,
    ) -> Result<(Component, &Runtime), PluginError> {
        let plugin = source.to_string();
        wasm.check_component(&plugin)?;
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let runtime = self.runtime(Compiler::for_size(self.choice, wasm.len))?;
        if let Some(component) = compiled.get(&wasm.key) {
            return Ok((component.clone(), runtime));
        }
        let engine = &runtime.engine;
        if let Some(component) = self
            .disk
            .as_ref()
            .and_then(|cache| cache.load(engine, runtime.compiler, &wasm.key))
        {
            compiled.insert(wasm.key, component.clone());
            return Ok((component, runtime));
        }
        // A miss: read the bytes, and key what is compiled by the bytes compiled (the file may
        // have changed since it was fingerprinted; its artifact must not go under the old key).
        let bytes = wasm::read(source)?;
        wasm = Fingerprint::of_bytes(&bytes);
        wasm.check_component(&plugin)?;
        let started = std::time::Instant::now();
        let result = match &self.disk {
            Some(cache) => cache.compile(engine, runtime.compiler, &bytes, &wasm.key, &plugin),
            None => Component::new(engine, &bytes),
        };
        let took = started.elapsed();
        if warn_slow && took > SLOW_LOAD {
            // An interpreter inside a component (Python, JavaScript) compiles for seconds: say
            // where the time went and how to move it out of the deploy.
            tracing::warn!(
                plugin = %plugin,
                "loading the plugin took {:.1} s ({} compiled to native code by {}); `tagship plugin precompile PLUGIN` (or `--config FILE`, every plugin of a configuration) fills the cache ahead (in CI, cache {})",
                took.as_secs_f64(),
                if wasm.len >= 1 << 20 {
                    format!("{} MB", wasm.len >> 20)
                } else {
                    format!("{} KB", wasm.len >> 10)
                },
                runtime.compiler.name(),
                self.disk
                    .as_ref()
                    .map_or_else(|| "TAGSHIP_CACHE_DIR".into(), |c| c.dir().display().to_string())
            );
        }
        let component = result.map_err(|e| PluginError::Compile {
            plugin,
            reason: escape(&format!("{e:#}")),
        })?;
        compiled.insert(wasm.key, component.clone());
        Ok((component, runtime))
    }
}

/// Links `component` against the sandbox's imports. A failure names the import the sandbox
/// lacks and what to use instead.
fn link(
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
fn identify(
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
fn compatible(host: &semver::Version, plugin: &semver::Version) -> bool {
    let same_line = if host.major == 0 {
        plugin.major == 0 && host.minor == plugin.minor
    } else {
        host.major == plugin.major
    };
    same_line && plugin <= host
}

enum Pre {
    Health(health::HealthCheckPre<State>),
    Notifier(notifier::NotifierPre<State>),
    Compat(compat::CompatCheckPre<State>),
}

/// A loaded plugin, ready to be called. Cheap to share; every call gets a fresh sandbox.
pub struct Plugin {
    env: Arc<PluginEnv>,
    kind: PluginKind,
    engine: Engine,
    pre: Pre,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.env.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's configured name.
    pub fn name(&self) -> &str {
        &self.env.name
    }

    /// Its kind.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// `text` from the plugin, made safe to show: its granted secrets redacted, control and
    /// bidi characters escaped onto one line.
    pub fn clean(&self, text: &str) -> String {
        self.env.redactor.clean(text)
    }

    fn wrong_kind(&self, expected: PluginKind) -> PluginError {
        PluginError::WrongKind {
            plugin: self.env.name.clone(),
            actual: self.kind.world(),
            expected: expected.world(),
        }
    }

    fn new_store(&self, ctx: &DeployContext) -> Store<State> {
        let mut store = Store::new(&self.engine, State::new(self.env.clone(), ctx));
        store.limiter(|state| &mut state.limiter);
        let limits = &self.env.limits;
        store.set_epoch_deadline(ticks(limits.cpu.min(limits.wall)));
        store.epoch_deadline_callback(move |mut cx| {
            // The epoch counts wall time. The wall limit is a stop wherever the guest is (a
            // guest that computes after a long wait is stopped too, not only one that waits);
            // the CPU limit counts the guest's own CPU time, which grows slower than the epoch.
            let state = cx.data_mut();
            let limits = &state.env.limits;
            let elapsed = state.started.elapsed();
            if elapsed >= limits.wall {
                state.wall_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            let used = state.cpu.used();
            if used >= limits.cpu {
                state.cpu_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            let next = limits
                .cpu
                .saturating_sub(used)
                .min(limits.wall.saturating_sub(elapsed));
            Ok(UpdateDeadline::Continue(ticks(next)))
        });
        store
    }

    /// Runs `call` in a fresh sandbox with the wall-clock limit, and turns whatever went wrong
    /// into a [`PluginError`].
    async fn run<R, F>(&self, ctx: &DeployContext, call: F) -> Result<R, PluginError>
    where
        F: AsyncFnOnce(&mut Store<State>) -> wasmtime::Result<R>,
    {
        let mut store = self.new_store(ctx);
        let limit = self.env.limits.wall;
        let meter = store.data().cpu.clone();
        let outcome = tokio::time::timeout(limit, meter.meter(call(&mut store))).await;
        let state = store.data_mut();
        let result = match outcome {
            Err(_elapsed) => Err(PluginError::WallTimeout {
                plugin: self.env.name.clone(),
                limit,
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.classify(state, &error)),
        };
        state.flush_logs();
        result
    }

    fn classify(&self, state: &State, error: &wasmtime::Error) -> PluginError {
        let plugin = self.env.name.clone();
        if let Some(asked) = state.limiter.refused {
            return PluginError::MemoryLimit {
                plugin,
                limit: self.env.limits.memory_bytes,
                asked,
            };
        }
        if state.wall_exceeded {
            return PluginError::WallTimeout {
                plugin,
                limit: self.env.limits.wall,
            };
        }
        if state.cpu_exceeded {
            return PluginError::CpuLimit {
                plugin,
                limit: self.env.limits.cpu,
            };
        }
        let text = format!("{error:#}");
        match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => PluginError::StackOverflow { plugin },
            // A Rust guest keeps its own stack in linear memory below its data; overflowing it
            // runs off the bottom of memory rather than hitting wasm's stack guard.
            Some(Trap::MemoryOutOfBounds) => PluginError::Trapped {
                plugin,
                trap: "out-of-bounds memory access (in a Rust guest usually a stack overflow from deep recursion)".into(),
            },
            Some(Trap::Interrupt) => PluginError::CpuLimit { plugin, limit: self.env.limits.cpu },
            Some(Trap::UnreachableCodeReached) => {
                let message = state.abort_message().unwrap_or_else(|| {
                    "it aborted (wasm `unreachable`) without a message or any output on stderr"
                        .into()
                });
                PluginError::Panicked { plugin, message }
            }
            Some(trap) => PluginError::Trapped { plugin, trap: trap.to_string() },
            None if text.contains("pooling") || text.contains("instance count") => {
                PluginError::Instantiate { plugin, reason: self.env.redactor.clean(&text) }
            }
            None => PluginError::Trapped { plugin, trap: self.env.redactor.clean(&text) },
        }
    }

    fn check_size(&self, size: usize) -> Result<(), PluginError> {
        let limit = self.env.limits.result_bytes;
        if size > limit {
            return Err(PluginError::ResultTooLarge {
                plugin: self.env.name.clone(),
                size,
                limit,
            });
        }
        Ok(())
    }

    fn returned(&self, message: &str) -> PluginError {
        PluginError::Returned {
            plugin: self.env.name.clone(),
            message: self.env.redactor.clean(message),
        }
    }

    /// Asks a health-check plugin about `ctx.stage` now.
    pub async fn check_health(&self, ctx: &DeployContext) -> Result<HealthReport, PluginError> {
        let Pre::Health(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::HealthCheck));
        };
        let wit_ctx = to_wit_context(ctx);
        let result = self
            .run(ctx, async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .tagship_plugin_health()
                    .call_check(&mut *store, &wit_ctx)
                    .await
            })
            .await?;
        match result {
            Ok(report) => {
                self.check_size(
                    encoded(&report.reason) + report.threshold.as_deref().map_or(0, encoded),
                )?;
                Ok(HealthReport {
                    status: match report.status {
                        wit_types::HealthStatus::Healthy => HealthStatus::Healthy,
                        wit_types::HealthStatus::Unhealthy => HealthStatus::Unhealthy,
                        wit_types::HealthStatus::Unknown => HealthStatus::Unknown,
                    },
                    value: report.value,
                    threshold: report.threshold.map(|t| self.clean(&t)),
                    reason: self.clean(&report.reason),
                })
            }
            Err(message) => {
                self.check_size(encoded(&message))?;
                Err(self.returned(&message))
            }
        }
    }

    /// Asks a compat-check plugin whether `ctx.version` fits `ctx.app_version`.
    pub async fn check_compat(&self, ctx: &DeployContext) -> Result<CompatReport, PluginError> {
        let Pre::Compat(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::CompatCheck));
        };
        let wit_ctx = to_wit_context(ctx);
        let result = self
            .run(ctx, async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .tagship_plugin_compat()
                    .call_check(&mut *store, &wit_ctx)
                    .await
            })
            .await?;
        match result {
            Ok(report) => {
                self.check_size(
                    LIST_BYTES + report.reasons.iter().map(|r| encoded(r)).sum::<usize>(),
                )?;
                Ok(CompatReport {
                    compatible: report.compatible,
                    reasons: report.reasons.iter().map(|r| self.clean(r)).collect(),
                })
            }
            Err(message) => {
                self.check_size(encoded(&message))?;
                Err(self.returned(&message))
            }
        }
    }

    /// Delivers one event through a notifier plugin.
    pub async fn notify(&self, event: &Event) -> Result<(), PluginError> {
        let Pre::Notifier(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::Notifier));
        };
        let wit_event = wit_types::Event {
            kind: to_wit_kind(event.kind),
            deploy_id: event.deploy_id.clone(),
            timestamp: event.timestamp.clone(),
            context: to_wit_context(&event.context),
            message: event.message.clone(),
        };
        let result = self
            .run(&event.context, async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .tagship_plugin_notify()
                    .call_notify(&mut *store, &wit_event)
                    .await
            })
            .await?;
        result.map_err(|message| match self.check_size(encoded(&message)) {
            Err(too_large) => too_large,
            Ok(()) => self.returned(&message),
        })
    }
}

/// Bytes a list takes in the canonical ABI besides its elements (pointer and length).
const LIST_BYTES: usize = 8;

/// Bytes a string takes in the canonical ABI: its UTF-8 and a pointer and length. A list of
/// two million empty strings is 16 MB, not 0.
fn encoded(text: &str) -> usize {
    LIST_BYTES + text.len()
}

fn ticks(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis() / engine::TICK.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn to_wit_context(ctx: &DeployContext) -> wit_types::DeployContext {
    wit_types::DeployContext {
        component: ctx.component.clone(),
        version: ctx.version.clone(),
        previous_version: ctx.previous_version.clone(),
        stage: ctx.stage.clone(),
        environment: ctx.environment.clone(),
        pipeline_url: ctx.pipeline_url.clone(),
        workloads: ctx.workloads.iter().map(to_wit_workload).collect(),
        app_version: ctx.app_version.clone(),
    }
}

fn to_wit_workload(w: &WorkloadVersion) -> wit_types::WorkloadVersion {
    wit_types::WorkloadVersion {
        cluster: w.cluster.clone(),
        namespace: w.namespace.clone(),
        workload: w.workload.clone(),
        container: w.container.clone(),
        image: w.image.clone(),
        version: w.version.clone(),
    }
}

fn to_wit_kind(kind: EventKind) -> wit_types::EventKind {
    use wit_types::EventKind as W;
    match kind {
        EventKind::DeployStarted => W::DeployStarted,
        EventKind::DeploySucceeded => W::DeploySucceeded,
        EventKind::DeployFailed => W::DeployFailed,
        EventKind::StageStarted => W::StageStarted,
        EventKind::StageSucceeded => W::StageSucceeded,
        EventKind::StageFailed => W::StageFailed,
        EventKind::AwaitingApproval => W::AwaitingApproval,
        EventKind::RollbackStarted => W::RollbackStarted,
        EventKind::RollbackSucceeded => W::RollbackSucceeded,
        EventKind::RollbackFailed => W::RollbackFailed,
        EventKind::RollbackRefused => W::RollbackRefused,
        EventKind::CheckBlocked => W::CheckBlocked,
        EventKind::LockWaiting => W::LockWaiting,
        EventKind::Test => W::Test,
    }
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

    #[test]
    fn a_source_is_a_builtin_or_a_path() {
        assert_eq!(
            Source::parse("builtin:http-health"),
            Source::Builtin("http-health".into())
        );
        assert_eq!(Source::parse("./p.wasm"), Source::File("./p.wasm".into()));
    }

    #[test]
    fn cpu_budgets_are_whole_ticks_and_never_zero() {
        assert_eq!(ticks(std::time::Duration::from_secs(5)), 500);
        assert_eq!(ticks(std::time::Duration::from_millis(1)), 1);
    }

    #[test]
    fn a_file_changed_after_its_fingerprint_is_cached_under_the_bytes_compiled() {
        let Some(builtin) = builtin::bytes("http-health") else {
            return; // a build without the guests' wasm (TAGSHIP_SKIP_GUESTS)
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        // Fingerprinted while it held other bytes; replaced before the compile read it.
        std::fs::write(&path, b"\0asm\x0d\0\x01\0 an older build").unwrap();
        let stale = Fingerprint::of(&Source::File(path.clone())).unwrap();
        std::fs::write(&path, builtin).unwrap();
        let host = PluginHost::with_cache_dir(Some(dir.path().join("cache")));
        host.compile(&Source::File(path), stale.clone(), false)
            .unwrap();
        let runtime = host.runtime(Compiler::Cranelift).unwrap();
        let cache = host.disk.as_ref().unwrap();
        let compiled = Fingerprint::of_bytes(builtin);
        assert!(cache.contains(&runtime.engine, Compiler::Cranelift, &compiled.key));
        assert!(!cache.contains(&runtime.engine, Compiler::Cranelift, &stale.key));
        let in_process = host.compiled.lock().unwrap();
        assert!(in_process.contains_key(&compiled.key));
        assert!(!in_process.contains_key(&stale.key));
    }
}
