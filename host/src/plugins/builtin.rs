//! The built-in plugins, compiled into the binary by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The wasm of built-in `name`.
pub(crate) fn bytes(name: &str) -> Option<&'static [u8]> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, wasm)| *wasm)
}

/// The names of every built-in plugin, for `builtin:NAME`.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(name, _)| *name).collect()
}
