//! The pure modules of the `tagship` crate that parse untrusted text, compiled here from the
//! same source files (by path), so the fuzz build needs neither wasmtime, kube nor the guest
//! plugins: configuration, versions and tag templates, the deploy context, host grants,
//! redaction and the check of a guest's HTTP request. A module that starts to depend on another
//! part of tagship fails to build here; add that module below (if pure) or fuzz through the
//! `tagship` crate instead.
#![allow(dead_code, unused_imports, reason = "only the parsers are fuzzed")]

#[path = "../../host/src"]
mod host {
    pub mod config;
    pub mod context;
    pub mod version;
    #[path = "plugins"]
    pub mod plugins {
        pub mod grants;
        pub mod names;
        pub mod redact;
        pub mod request;
        pub use names::BUILTIN_NAMES;
    }
}

pub use host::plugins::grants::Grants;
pub use host::plugins::redact::Redactor;
pub use host::plugins::request;
pub use host::{config, context, plugins, version};
