//! Outbound HTTP through the host's `fetch`: only to hosts the operator granted, redirects
//! re-checked by the host, bodies capped by the plugin's response size limit.
//!
//! Quick calls: [`get`] and [`post_json`] (errors name the method and URL). For headers, other
//! methods, or a URL that must not appear in errors (a secret webhook URL), build a [`Request`]
//! and call [`Request::send`], whose errors never contain the URL.

use serde_json::Value;

use crate::bindings::tagship::plugin::http::fetch;
pub use crate::bindings::tagship::plugin::http::{HttpError, Request, Response};

/// How many bytes of a body [`Response::excerpt`] shows by default.
pub const EXCERPT_BYTES: usize = 200;

impl Request {
    /// A request with `method` (`GET`, `POST`, ...) to absolute `url`, no headers, no body.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Self {
            method: method.to_owned(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// The same request with header `name: value` added.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The same request with `body` as its body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The same request with `value` serialized as its body and `Content-Type: application/json`.
    #[must_use]
    pub fn json(self, value: &Value) -> Self {
        self.header("Content-Type", "application/json")
            .body(value.to_string())
    }

    /// Sends the request through the host. The error carries the host's reason and names the
    /// method and origin (`POST https://hooks.example`), never the URL's path or query.
    pub fn send(&self) -> Result<Response, HttpError> {
        fetch(self)
    }
}

impl Response {
    /// True for a 2xx status.
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of header `name` (case-insensitive), the first when repeated.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, String> {
        std::str::from_utf8(&self.body).map_err(|e| format!("response body is not UTF-8 text: {e}"))
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "response body is not JSON ({e}): {}",
                excerpt(&self.body, EXCERPT_BYTES)
            )
        })
    }

    /// The first [`EXCERPT_BYTES`] of the body as text, for error messages.
    #[must_use]
    pub fn excerpt(&self) -> String {
        excerpt(&self.body, EXCERPT_BYTES)
    }

    /// `Ok(self)` for a 2xx status; otherwise an error with the status and a body excerpt
    /// (no URL), e.g. `HTTP 404: page not found`.
    pub fn error_for_status(self) -> Result<Self, String> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(status_error(self.status, &self.body))
        }
    }
}

impl HttpError {
    /// A one-line description, e.g. `denied: host example.com is not granted`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Denied(why) => format!("denied: {why}"),
            Self::InvalidRequest(why) => format!("invalid request: {why}"),
            Self::Timeout(why) => format!("timeout: {why}"),
            Self::TooLarge(why) => format!("response too large: {why}"),
            Self::Connection(why) => format!("connection failed: {why}"),
        }
    }
}

/// `GET url`; the error names the method and URL.
pub fn get(url: &str) -> Result<Response, String> {
    Request::get(url)
        .send()
        .map_err(|e| format!("GET {url}: {}", e.describe()))
}

/// `POST url` with `value` as a JSON body; the error names the method and URL.
pub fn post_json(url: &str, value: &Value) -> Result<Response, String> {
    Request::post(url)
        .json(value)
        .send()
        .map_err(|e| format!("POST {url}: {}", e.describe()))
}

/// `HTTP <status>: <body excerpt>` (or just `HTTP <status>` for an empty body).
#[must_use]
pub fn status_error(status: u16, body: &[u8]) -> String {
    let text = excerpt(body, EXCERPT_BYTES);
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

/// At most `max` bytes of `body` as one line of text (lossy UTF-8, whitespace collapsed,
/// `…` when cut).
#[must_use]
pub fn excerpt(body: &[u8], max: usize) -> String {
    let cut = body.len() > max;
    let text = String::from_utf8_lossy(&body[..body.len().min(max)]);
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if cut {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_one_line_and_marks_a_cut() {
        assert_eq!(excerpt(b"  page\n not\tfound ", 100), "page not found");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
    }

    #[test]
    fn a_status_error_shows_status_and_body() {
        assert_eq!(status_error(404, b"no such hook"), "HTTP 404: no such hook");
        assert_eq!(status_error(500, b""), "HTTP 500");
    }

    #[test]
    fn headers_match_case_insensitively() {
        let response = Response {
            status: 200,
            headers: vec![("gitlab-container-registry-version".into(), "v3.1.0".into())],
            body: Vec::new(),
        };
        assert_eq!(
            response.header("Gitlab-Container-Registry-Version"),
            Some("v3.1.0")
        );
        assert!(response.is_success());
    }

    #[test]
    fn a_json_request_sets_the_content_type() {
        let request = Request::post("http://x/").json(&serde_json::json!({"a": 1}));
        assert_eq!(
            request.headers,
            vec![("Content-Type".into(), "application/json".into())]
        );
        assert_eq!(request.body.as_deref(), Some(&b"{\"a\":1}"[..]));
    }
}
