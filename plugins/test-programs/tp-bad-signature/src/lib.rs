//! Test guest `tp-bad-signature`: exports `tagship:plugin/health@0.1.0` (name and version as
//! tagship expects) but its `check` is `func(ctx: u32) -> string`. The host must refuse it at
//! load, naming the function and both signatures, not fail when it is first called.
//!
//! Contract (if it were ever called): returns `bad signature <ctx>`.

// Generated bindings and the generated export glue are unsafe and undocumented by nature.
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "health-check",
    });

    use super::BadSignature;
    export!(BadSignature);
}

struct BadSignature;

impl bindings::exports::tagship::plugin::health::Guest for BadSignature {
    fn check(ctx: u32) -> String {
        format!("bad signature {ctx}")
    }
}
