//! The names of the built-in plugins. Pure, so the configuration checks `builtin:NAME` (with
//! a "did you mean") without the plugins' wasm, also in the fuzz build.

/// The built-in plugins, each named `builtin:NAME`, in the order they are listed to people.
/// `build.rs` compiles and embeds each one; a unit test of `builtin.rs` checks that the two
/// lists agree.
pub const BUILTIN_NAMES: &[&str] = &[
    "prometheus-health",
    "http-health",
    "slack-notify",
    "webhook-notify",
    "gitlab-notify",
    "rails-compat",
];
