//! Test guest `tp-wasi-http`: a health check that also imports
//! `wasi:http/outgoing-handler@0.3.0` (a one-function stand-in of the interface, enough for
//! its name), as a component built with componentize-js's default features does. The sandbox
//! does not provide `wasi:http`: `plugin inspect` and `plugin run` must refuse it (exit 2),
//! naming the import and saying what to use instead.
//!
//! Contract (if it were ever called): calls the import and returns `Ok` healthy.

// Generated bindings are unsafe and undocumented by nature.
#[allow(unsafe_code, missing_docs, clippy::all, clippy::pedantic)]
mod wasi_http {
    wit_bindgen::generate!({
        inline: "
            package wasi:http@0.3.0;
            interface outgoing-handler {
                handle: func(request: u32) -> u32;
            }
            world importer {
                import outgoing-handler;
            }
        ",
        world: "importer",
    });
}

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct WasiHttp;

impl Guest for WasiHttp {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let answer = wasi_http::wasi::http::outgoing_handler::handle(1);
        Ok(HealthReport::healthy(format!(
            "wasi:http answered {answer}"
        )))
    }
}

tagship_plugin::export_health_check!(WasiHttp);
