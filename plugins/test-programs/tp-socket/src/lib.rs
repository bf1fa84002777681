//! Test guest `tp-socket`: uses `wasi:sockets` through `std::net`, which the sandbox links but
//! denies, to check what a plugin sees.
//!
//! Contract: config `addr` (required, `ip:port`): connects to it with `TcpStream::connect`,
//! then resolves config `name` (default `localhost`) with `ToSocketAddrs`. `Ok` unhealthy
//! with reason `connect: <outcome>; resolve: <outcome>`, where an outcome is `connected`,
//! `<n> addresses`, or the error's kind and text.

use std::net::{TcpStream, ToSocketAddrs};

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct Socket;

impl Guest for Socket {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let addr = tagship_plugin::require_config("addr")?;
        let name = tagship_plugin::config("name").unwrap_or_else(|| "localhost".to_owned());
        let connect = match TcpStream::connect(addr.as_str()) {
            Ok(_) => "connected".to_owned(),
            Err(e) => format!("{:?}: {e}", e.kind()),
        };
        let resolve = match (name.as_str(), 80).to_socket_addrs() {
            Ok(found) => format!("{} addresses", found.count()),
            Err(e) => format!("{:?}: {e}", e.kind()),
        };
        Ok(HealthReport::unhealthy(format!(
            "connect: {connect}; resolve: {resolve}"
        )))
    }
}

tagship_plugin::export_health_check!(Socket);
