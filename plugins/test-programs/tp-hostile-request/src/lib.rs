//! Test guest `tp-hostile-request`: sends the request its config describes, to probe the bounds
//! the host puts on everything a guest controls in `http.fetch`.
//!
//! Contract: config `url` (default `http://127.0.0.1:9/`), `method` (default `GET`), `headers`
//! (a count of extra `x-h<i>: v` headers, default 0), `header_bytes` (one more header
//! `x-big` of that many bytes, default none), `same_headers` (a count of `x-same: v` repeats),
//! `url_pad` (bytes of path appended to the URL), `body_bytes` (a body of that many `b`s),
//! `set` (headers to send, `Name: value` per line).
//! - the host refused or failed the request: `Err` with the error text (`invalid request: …`,
//!   `denied: …`, `connection failed: …`);
//! - a response: `Ok` healthy, `value` the status, reason `got HTTP <status>: <body excerpt>`.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};
use tagship_plugin::http::Request;

struct HostileRequest;

fn count(key: &str) -> Result<usize, String> {
    tagship_plugin::config(key).map_or(Ok(0), |v| {
        v.parse().map_err(|e| format!("config `{key}`: {e}"))
    })
}

impl Guest for HostileRequest {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let mut url =
            tagship_plugin::config("url").unwrap_or_else(|| "http://127.0.0.1:9/".to_owned());
        url.push_str(&"p".repeat(count("url_pad")?));
        let method = tagship_plugin::config("method").unwrap_or_else(|| "GET".to_owned());
        let mut request = Request::new(&method, url);
        for i in 0..count("headers")? {
            request = request.header(&format!("x-h{i}"), "v");
        }
        for _ in 0..count("same_headers")? {
            request = request.header("x-same", "v");
        }
        let big = count("header_bytes")?;
        if big > 0 {
            request = request.header("x-big", &"v".repeat(big));
        }
        for line in tagship_plugin::config("set").unwrap_or_default().lines() {
            if let Some((name, value)) = line.split_once(": ") {
                request = request.header(name, value);
            }
        }
        let body = count("body_bytes")?;
        if body > 0 {
            request = request.body(vec![b'b'; body]);
        }
        let response = request.send().map_err(|e| e.describe())?;
        Ok(HealthReport::healthy(format!(
            "got HTTP {}: {}",
            response.status,
            response.excerpt()
        ))
        .with_value(f64::from(response.status)))
    }
}

tagship_plugin::export_health_check!(HostileRequest);
