//! Host bindings generated from `wit/tagship.wit`.
//!
//! The shared imports (`types`, `host`, `http`) are generated once, from the `guest-imports`
//! world, and reused by the three plugin worlds, so the sandbox implements each host trait once.

#![allow(missing_docs, reason = "generated code; the WIT documents every item")]
#![allow(clippy::pedantic, reason = "generated code")]

/// The imports every plugin world shares.
pub mod imports {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "guest-imports",
        imports: { default: async | trappable },
    });
}

/// The `health-check` world.
pub mod health {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "health-check",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "tagship:plugin/types": super::imports::tagship::plugin::types,
            "tagship:plugin/host": super::imports::tagship::plugin::host,
            "tagship:plugin/http": super::imports::tagship::plugin::http,
        },
    });
}

/// The `notifier` world.
pub mod notifier {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "notifier",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "tagship:plugin/types": super::imports::tagship::plugin::types,
            "tagship:plugin/host": super::imports::tagship::plugin::host,
            "tagship:plugin/http": super::imports::tagship::plugin::http,
        },
    });
}

/// The `compat-check` world.
pub mod compat {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "compat-check",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "tagship:plugin/types": super::imports::tagship::plugin::types,
            "tagship:plugin/host": super::imports::tagship::plugin::host,
            "tagship:plugin/http": super::imports::tagship::plugin::http,
        },
    });
}

pub use imports::tagship::plugin::{host as wit_host, http as wit_http, types as wit_types};
