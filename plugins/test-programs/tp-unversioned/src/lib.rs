//! Test guest `tp-unversioned`: exports `tagship:plugin/health` with no `@version`. The host
//! must refuse it and say that the export carries no API version.
//!
//! Contract (if it were ever called): `check` returns `true`.

// Generated bindings and the generated export glue are unsafe and undocumented by nature.
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "health-check",
    });

    use super::Unversioned;
    export!(Unversioned);
}

struct Unversioned;

impl bindings::exports::tagship::plugin::health::Guest for Unversioned {
    fn check() -> bool {
        true
    }
}
