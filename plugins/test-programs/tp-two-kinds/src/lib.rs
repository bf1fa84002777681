//! Test guest `tp-two-kinds`: exports both `tagship:plugin/health@0.1.0` and
//! `tagship:plugin/compat@0.1.0`. The host must refuse it (a plugin is one kind), naming both.
//!
//! Contract (if it were ever called): both `check`s return `true`.

// Generated bindings and the generated export glue are unsafe and undocumented by nature.
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "two-kinds",
    });

    use super::TwoKinds;
    export!(TwoKinds);
}

struct TwoKinds;

impl bindings::exports::tagship::plugin::health::Guest for TwoKinds {
    fn check() -> bool {
        true
    }
}

impl bindings::exports::tagship::plugin::compat::Guest for TwoKinds {
    fn check() -> bool {
        true
    }
}
