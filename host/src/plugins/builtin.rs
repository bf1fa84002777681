//! The built-in plugins, compiled into the binary by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The wasm of built-in `name`.
pub(crate) fn bytes(name: &str) -> Option<&'static [u8]> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, wasm)| *wasm)
}

/// The names of every built-in plugin, for `builtin:NAME` (also in a build without their wasm,
/// `TAGSHIP_SKIP_GUESTS`).
pub fn builtin_names() -> Vec<&'static str> {
    super::BUILTIN_NAMES.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_ins_build_rs_embeds_are_the_ones_named() {
        let embedded: Vec<&str> = BUILTINS.iter().map(|(name, _)| *name).collect();
        assert_eq!(embedded, builtin_names());
    }
}
