//! `PluginHost`: loads plugins (read, fingerprint, compile or take from the caches, check the
//! kind and link) and owns the engines, linkers and compiled-component caches.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

use super::call::Pre;
use super::linking::{identify, import_status, link};
use super::sandbox::{PluginEnv, State};
use super::wasm::{self, Fingerprint};
use super::{
    Compiler, CompilerChoice, Import, Inspection, Plugin, PluginError, PluginKind, PluginSpec,
    Redactor, Source, bindings, compat, engine, escape, health, http, limits, notifier,
};

/// A load slower than this is worth a warning naming `plugin precompile`.
pub(super) const SLOW_LOAD: std::time::Duration = std::time::Duration::from_secs(2);

/// The engine and the linker plugins are instantiated with.
pub(super) struct Runtime {
    pub(super) engine: Engine,
    /// The compiler of `engine`.
    pub(super) compiler: Compiler,
    pub(super) linker: Arc<Linker<State>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_changed_after_its_fingerprint_is_cached_under_the_bytes_compiled() {
        let Some(builtin) = super::super::builtin::bytes("http-health") else {
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
