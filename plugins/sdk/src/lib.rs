//! Guest SDK for tagship plugins: the WIT bindings of `tagship:plugin@0.1.0`, generated once, and
//! the helpers a plugin needs so a custom health check, notifier or compat check is a short file.
//!
//! It owns the guest side of the contract in `wit/tagship.wit` and nothing else: it never decides
//! a verdict and never reaches anything the host does not grant (there is no file system,
//! environment or socket in the sandbox; HTTP goes through the host's `fetch`).
//!
//! # Writing a plugin
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2`. It implements the `Guest` trait of its
//! kind and exports it with the matching macro:
//!
//! | kind | trait | export macro |
//! |---|---|---|
//! | health check | [`health::Guest`] | [`export_health_check!`] |
//! | notifier | [`notify::Guest`] | [`export_notifier!`] |
//! | compat check | [`compat::Guest`] | [`export_compat_check!`] |
//!
//! ```no_run
//! use tagship_plugin::health::{DeployContext, Guest, HealthReport};
//!
//! struct Ping;
//!
//! impl Guest for Ping {
//!     fn check(ctx: DeployContext) -> Result<HealthReport, String> {
//!         let url = tagship_plugin::require_config("url")?;
//!         let response = tagship_plugin::http::get(&url)?;
//!         Ok(if response.is_success() {
//!             HealthReport::healthy(format!("{} answers on {}", ctx.component, ctx.stage))
//!         } else {
//!             HealthReport::unhealthy(format!("HTTP {}", response.status))
//!         })
//!     }
//! }
//!
//! tagship_plugin::export_health_check!(Ping);
//! ```
//!
//! The macros take the type only; the SDK's bindings are found through the SDK's own paths, so a
//! plugin crate depends on `tagship-plugin` alone (no direct `wit-bindgen` dependency).
//!
//! # Pure helpers
//!
//! [`version`], [`template`] and [`url`] touch no bindings, so plugins can unit-test logic built on
//! them with a plain `cargo test` on the host target.

mod config;
pub mod http;
pub mod json;
pub mod log;
mod report;
pub mod template;
pub mod url;
pub mod version;

pub use config::{config, config_or, require_config, require_secret, secret};

/// The `serde_json` the helpers use, so plugins can build JSON without their own dependency.
pub use serde_json;

/// Bindings of the shared imports (`types`, `host`, `http`), generated once for all three worlds.
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "guest-imports",
        generate_all,
    });
}

/// The raw generated bindings of the imports, for what the helpers do not cover.
pub mod wit {
    pub use crate::bindings::tagship::plugin::{host, http, types};
}

/// Bindings of the `health-check` world; plugins use [`health`] and [`export_health_check!`].
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
pub mod health_world {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "health-check",
        with: {
            "tagship:plugin/types@0.1.0": crate::bindings::tagship::plugin::types,
            "tagship:plugin/host@0.1.0": crate::bindings::tagship::plugin::host,
            "tagship:plugin/http@0.1.0": crate::bindings::tagship::plugin::http,
        },
        pub_export_macro: true,
        export_macro_name: "export_health_check",
        default_bindings_module: "tagship_plugin::health_world",
    });
}

/// Bindings of the `notifier` world; plugins use [`notify`] and [`export_notifier!`].
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
pub mod notifier_world {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "notifier",
        with: {
            "tagship:plugin/types@0.1.0": crate::bindings::tagship::plugin::types,
            "tagship:plugin/host@0.1.0": crate::bindings::tagship::plugin::host,
            "tagship:plugin/http@0.1.0": crate::bindings::tagship::plugin::http,
        },
        pub_export_macro: true,
        export_macro_name: "export_notifier",
        default_bindings_module: "tagship_plugin::notifier_world",
    });
}

/// Bindings of the `compat-check` world; plugins use [`compat`] and [`export_compat_check!`].
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
pub mod compat_world {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "compat-check",
        with: {
            "tagship:plugin/types@0.1.0": crate::bindings::tagship::plugin::types,
            "tagship:plugin/host@0.1.0": crate::bindings::tagship::plugin::host,
            "tagship:plugin/http@0.1.0": crate::bindings::tagship::plugin::http,
        },
        pub_export_macro: true,
        export_macro_name: "export_compat_check",
        default_bindings_module: "tagship_plugin::compat_world",
    });
}

/// Exports a [`health::Guest`] implementation as the plugin's `tagship:plugin/health@0.1.0`:
/// `tagship_plugin::export_health_check!(MyCheck);`
pub use health_world::export_health_check;

/// Exports a [`notify::Guest`] implementation as the plugin's `tagship:plugin/notify@0.1.0`:
/// `tagship_plugin::export_notifier!(MyNotifier);`
pub use notifier_world::export_notifier;

/// Exports a [`compat::Guest`] implementation as the plugin's `tagship:plugin/compat@0.1.0`:
/// `tagship_plugin::export_compat_check!(MyCompat);`
pub use compat_world::export_compat_check;

/// Everything a health check implements and returns.
pub mod health {
    pub use crate::bindings::tagship::plugin::types::{
        DeployContext, HealthReport, HealthStatus, WorkloadVersion,
    };
    pub use crate::health_world::exports::tagship::plugin::health::Guest;
}

/// Everything a notifier implements and receives.
pub mod notify {
    pub use crate::bindings::tagship::plugin::types::{
        DeployContext, Event, EventKind, WorkloadVersion,
    };
    pub use crate::notifier_world::exports::tagship::plugin::notify::Guest;
}

/// Everything a compat check implements and returns.
pub mod compat {
    pub use crate::bindings::tagship::plugin::types::{
        CompatReport, DeployContext, WorkloadVersion,
    };
    pub use crate::compat_world::exports::tagship::plugin::compat::Guest;
}
