//! The wasmtime engine, its epoch ticker, and the on-disk cache of compiled components.
//!
//! # Guarantees
//! - The cache only ever loads artifacts this runner wrote: files are named by the blake3 of the
//!   wasm and the engine's precompile-compatibility hash, live in a directory only the current
//!   user can write, and are checked for owner and mode before loading. A `.cwasm` supplied by a
//!   plugin author is never loaded (plugins are always given as `.wasm`).
//! - A missing or unusable cache only costs compile time; it never fails a load.
//! - Artifacts are mapped, not copied (a cached load of an interpreter's 35-45 MB artifact takes
//!   milliseconds and its pages are shared), so a cache file is never modified in place: this
//!   runner writes a new file and renames it over. Anything else that writes into the cache
//!   (a CI cache restore) must do the same or run while no tagship runs: rewriting a mapped
//!   file in place (`cp` over it) crashes the process using it with SIGBUS.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::MAX_MEMORY_BYTES;

/// One epoch tick. CPU limits are counted in ticks of this length.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Concurrent plugin instances the pooling allocator keeps slots for.
const POOL_INSTANCES: u32 = 128;

/// Bytes of a freed memory or table slot reset in place rather than decommitted.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// The code generator that turns a component into native code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiler {
    /// Cranelift, the optimising compiler: the fastest code, seconds and hundreds of MB to
    /// compile a component that carries an interpreter.
    Cranelift,
    /// Winch, wasmtime's baseline compiler: one pass, several times faster to compile and a
    /// fraction of the memory, slower code.
    Winch,
}

impl Compiler {
    /// Components this large carry an interpreter (`CPython`, `StarlingMonkey`: 12-18 MB; a Rust
    /// plugin is well under 1 MB, `QuickJS` ~1.7 MB).
    pub const INTERPRETER_BYTES: usize = 4 << 20;

    /// The compiler for a component of `size` bytes under `choice` (`TAGSHIP_PLUGIN_COMPILER`):
    /// `auto` (unset) compiles an interpreter with Winch, everything else with Cranelift.
    pub fn for_size(choice: CompilerChoice, size: usize) -> Self {
        match choice {
            CompilerChoice::Auto if size >= Self::INTERPRETER_BYTES => Compiler::Winch,
            CompilerChoice::Auto | CompilerChoice::Always(Compiler::Cranelift) => {
                Compiler::Cranelift
            }
            CompilerChoice::Always(Compiler::Winch) => Compiler::Winch,
        }
    }

    /// Its name, as `TAGSHIP_PLUGIN_COMPILER` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Compiler::Cranelift => "cranelift",
            Compiler::Winch => "winch",
        }
    }
}

/// Which compiler plugins get: `TAGSHIP_PLUGIN_COMPILER` = `auto` (default), `cranelift` or
/// `winch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompilerChoice {
    /// Winch for components of at least [`Compiler::INTERPRETER_BYTES`], Cranelift for the rest.
    #[default]
    Auto,
    /// This compiler for every component.
    Always(Compiler),
}

impl CompilerChoice {
    /// From `TAGSHIP_PLUGIN_COMPILER`; an unknown value is `auto`, with a warning.
    pub fn from_env() -> Self {
        match std::env::var("TAGSHIP_PLUGIN_COMPILER").as_deref() {
            Err(_) | Ok("" | "auto") => CompilerChoice::Auto,
            Ok("cranelift") => CompilerChoice::Always(Compiler::Cranelift),
            Ok("winch") => CompilerChoice::Always(Compiler::Winch),
            Ok(other) => {
                tracing::warn!(
                    "TAGSHIP_PLUGIN_COMPILER={other:?} is not auto, cranelift or winch: using auto"
                );
                CompilerChoice::Auto
            }
        }
    }
}

/// Builds an engine with epoch interruption on and a thread ticking the epoch every [`TICK`].
pub(crate) fn new_engine(compiler: Compiler) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.strategy(match compiler {
        Compiler::Cranelift => wasmtime::Strategy::Cranelift,
        Compiler::Winch => wasmtime::Strategy::Winch,
    });
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Plugins are called with `call_async`, never `run_concurrent`; with concurrency support on,
    // every call ran through the component-model-async scheduler and every store drop resumed
    // a parked worker fiber with an error (a captured backtrace when `RUST_BACKTRACE` is set).
    config.concurrency_support(false);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .total_stacks(POOL_INSTANCES)
        .max_memory_size(MAX_MEMORY_BYTES)
        // A freed slot is reset to its pristine contents either way; these reset the pages the
        // last call dirtied in place (found with `PAGEMAP_SCAN` where the kernel has it) instead
        // of `madvise`-ing them away and taking a page fault per page on the next call.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    start_ticker(&engine);
    Ok(engine)
}

fn start_ticker(engine: &Engine) {
    // The thread ends when the engine is dropped.
    let engine = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("tagship-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, plugin CPU limits are off: {e}");
    }
}

/// The on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// The cache directory: `TAGSHIP_CACHE_DIR`, else `$XDG_CACHE_HOME/tagship`, else
    /// `~/.cache/tagship`; with `plugins/` below it.
    pub(crate) fn default_dir() -> Option<PathBuf> {
        std::env::var_os("TAGSHIP_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("tagship")))
            .map(|d| d.join("plugins"))
    }

    /// Opens (creating it, mode 0700) the cache at `dir`; `None` when it is unusable or unsafe.
    pub(crate) fn open(dir: PathBuf) -> Option<Self> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        if let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
        {
            tracing::warn!(dir = %dir.display(), "plugin cache disabled: cannot create it: {e}");
            return None;
        }
        let meta = std::fs::metadata(&dir).ok()?;
        if meta.uid() != current_uid()? || meta.permissions().mode() & 0o022 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                "plugin cache disabled: it must be owned by this user and not writable by others"
            );
            return None;
        }
        Some(ArtifactCache { dir })
    }

    /// Where the artifact of the wasm keyed `key` (its blake3) lives for this engine.
    fn path_for(&self, engine: &Engine, compiler: Compiler, key: &str) -> PathBuf {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        // The compiler too: the two engines must never take each other's artifacts.
        compiler.name().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        self.dir
            .join(format!("{key}-{:016x}.cwasm", hasher.finish()))
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a compiled artifact for the wasm keyed `key` is there.
    pub(crate) fn contains(&self, engine: &Engine, compiler: Compiler, key: &str) -> bool {
        self.path_for(engine, compiler, key).is_file()
    }

    /// The cached compiled component of the wasm keyed `key`, when there is a usable one.
    pub(crate) fn load(&self, engine: &Engine, compiler: Compiler, key: &str) -> Option<Component> {
        load_trusted(engine, &self.path_for(engine, compiler, key))
    }

    /// Compiles `wasm` (keyed `key`) and stores the result for the next load.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        compiler: Compiler,
        wasm: &[u8],
        key: &str,
        plugin: &str,
    ) -> wasmtime::Result<Component> {
        let path = self.path_for(engine, compiler, key);
        if wasm.len() >= Compiler::INTERPRETER_BYTES {
            tracing::info!(
                plugin,
                "compiling the plugin ({} MB, with {}) on its first use; it is cached in {} for the next",
                wasm.len() >> 20,
                compiler.name(),
                self.dir.display()
            );
        }
        let artifact = engine.precompile_component(wasm)?;
        match write_atomically(&path, &artifact) {
            // Map what was just written, as a cached load does: the code and the memory image
            // are then shared with the page cache instead of copied into this process.
            Ok(()) => {
                drop(artifact);
                deserialize_file(engine, &path)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot store the compiled plugin: {e}");
                deserialize(engine, &artifact)
            }
        }
    }
}

fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    // `/proc/self` is owned by the process's effective user.
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn load_trusted(engine: &Engine, path: &Path) -> Option<Component> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.uid() != current_uid()? || meta.permissions().mode() & 0o022 != 0 {
        return None;
    }
    match deserialize_file(engine, path) {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring an unusable cached plugin: {e}");
            None
        }
    }
}

#[allow(
    unsafe_code,
    reason = "loading precompiled code is unsafe; only this runner's own artifacts reach here"
)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `bytes` were produced by `Engine::precompile_component` of this process, or read
    // from the cache directory this runner owns, under a name keyed by the wasm's blake3 and
    // this engine's compatibility hash, after checking owner and mode (see the module docs).
    unsafe { Component::deserialize(engine, bytes) }
}

#[allow(
    unsafe_code,
    reason = "loading precompiled code is unsafe; only this runner's own artifacts reach here"
)]
fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: as for `deserialize`: `path` is in the cache directory this runner owns (mode
    // 0700), named by the wasm's blake3 and this engine's compatibility hash, and its owner and
    // mode were just checked. The file is mapped, not copied (an interpreter's artifact is tens
    // of MB, and its memory image is then mapped copy-on-write from the page cache); it is
    // never modified in place: the cache only ever replaces a file by renaming a new one over
    // it, which leaves this mapping on the old inode.
    unsafe { Component::deserialize_file(engine, path) }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{unique}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The process-wide engine of `compiler`, made on first use.
pub(crate) fn shared_engine(compiler: Compiler) -> Result<&'static Engine, String> {
    static CRANELIFT: OnceLock<Result<Engine, String>> = OnceLock::new();
    static WINCH: OnceLock<Result<Engine, String>> = OnceLock::new();
    let cell = match compiler {
        Compiler::Cranelift => &CRANELIFT,
        Compiler::Winch => &WINCH,
    };
    cell.get_or_init(|| {
        new_engine(compiler).map_err(|e| {
            format!(
                "cannot start the WebAssembly engine ({}): {e}",
                compiler.name()
            )
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_gives_winch_to_interpreters_and_cranelift_to_the_rest() {
        let auto = CompilerChoice::Auto;
        assert_eq!(Compiler::for_size(auto, 300 << 10), Compiler::Cranelift);
        assert_eq!(Compiler::for_size(auto, (4 << 20) - 1), Compiler::Cranelift);
        assert_eq!(Compiler::for_size(auto, 4 << 20), Compiler::Winch);
        assert_eq!(Compiler::for_size(auto, 18 << 20), Compiler::Winch);
        for compiler in [Compiler::Cranelift, Compiler::Winch] {
            for size in [1, 18 << 20] {
                assert_eq!(
                    Compiler::for_size(CompilerChoice::Always(compiler), size),
                    compiler
                );
            }
        }
    }
}
