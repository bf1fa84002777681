//! The request a guest hands to `tagship:plugin/http.fetch`, checked before anything is sent.
//!
//! Pure and total: every input a guest controls (method, URL, header names, values and count,
//! body) is bounded here and turned into the types the HTTP client takes through their fallible
//! constructors, so nothing a guest sends can reach an API that panics on size (`http`'s
//! `HeaderMap` panics past 32,768 entries, hyper's encoder on huge header blocks). Messages
//! never quote the URL's path or query (where webhook tokens live) and quote at most
//! [`PREVIEW`] characters of anything else the guest sent.
//!
//! The fuzz target `request_check` (fuzz/) drives [`check`] with arbitrary requests.

use url::Url;

/// The longest URL accepted, in bytes (browsers and proxies stop near here too).
pub const MAX_URL_BYTES: usize = 8 << 10;
/// The most request headers accepted.
pub const MAX_HEADERS: usize = 100;
/// The longest header (name plus value) accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 8 << 10;
/// The most header bytes (names plus values) of one request.
pub const MAX_HEADERS_TOTAL_BYTES: usize = 64 << 10;
/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Characters of a guest's string quoted in an error message.
pub const PREVIEW: usize = 40;

/// The methods a plugin may use.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Headers a plugin may not set: the runner derives them from the checked URL and the body.
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "expect",
];

/// A request that passed every check: what the HTTP client sends.
#[derive(Debug, Clone)]
pub struct Checked {
    /// One of [`METHODS`].
    pub method: http::Method,
    /// The parsed URL (its grant is checked per hop by the caller).
    pub url: Url,
    /// At most [`MAX_HEADERS`] headers, none of [`FORBIDDEN_HEADERS`].
    pub headers: http::HeaderMap,
    /// At most [`MAX_BODY_BYTES`].
    pub body: Option<Vec<u8>>,
}

/// Why a request was refused before it was sent (the `invalid-request` error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Checks a guest's request; see the module docs.
pub fn check(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
) -> Result<Checked, Invalid> {
    let method = check_method(method)?;
    if url.len() > MAX_URL_BYTES {
        return Err(Invalid(format!(
            "the URL is {} bytes, over the limit of {MAX_URL_BYTES} bytes",
            url.len()
        )));
    }
    // The parser's message names what is wrong, never the URL.
    let url = Url::parse(url).map_err(|e| Invalid(format!("the URL is not valid: {e}")))?;
    let headers = check_headers(headers)?;
    if let Some(body) = &body
        && body.len() > MAX_BODY_BYTES
    {
        return Err(Invalid(format!(
            "the request body is {} bytes, over the limit of {MAX_BODY_BYTES} bytes",
            body.len()
        )));
    }
    Ok(Checked {
        method,
        url,
        headers,
        body,
    })
}

fn check_method(method: &str) -> Result<http::Method, Invalid> {
    let refused = || {
        Invalid(format!(
            "method {} is not allowed (one of {})",
            preview(method),
            METHODS.join(", ")
        ))
    };
    let upper = METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .ok_or_else(refused)?;
    http::Method::from_bytes(upper.as_bytes()).map_err(|_| refused())
}

fn check_headers(given: &[(String, String)]) -> Result<http::HeaderMap, Invalid> {
    if given.len() > MAX_HEADERS {
        return Err(Invalid(format!(
            "{} request headers, over the limit of {MAX_HEADERS}",
            given.len()
        )));
    }
    let mut total = 0usize;
    let mut headers = http::HeaderMap::new();
    for (name, value) in given {
        let size = name.len().saturating_add(value.len());
        if size > MAX_HEADER_BYTES {
            return Err(Invalid(format!(
                "header {} is {size} bytes, over the limit of {MAX_HEADER_BYTES} bytes",
                preview(name)
            )));
        }
        total = total.saturating_add(size);
        if total > MAX_HEADERS_TOTAL_BYTES {
            return Err(Invalid(format!(
                "the request headers are over the limit of {MAX_HEADERS_TOTAL_BYTES} bytes in all"
            )));
        }
        if FORBIDDEN_HEADERS
            .iter()
            .any(|forbidden| forbidden.eq_ignore_ascii_case(name))
        {
            return Err(Invalid(format!(
                "header {} is set by the runner and cannot be sent by a plugin",
                preview(name)
            )));
        }
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Invalid(format!("header name {} is not valid", preview(name))))?;
        // A value's text is never quoted: it may be a credential.
        let value = http::HeaderValue::from_str(value).map_err(|_| {
            Invalid(format!(
                "the value of header `{header}` is not valid (control characters or non-visible bytes)"
            ))
        })?;
        headers
            .try_append(header, value)
            .map_err(|_| Invalid("too many request headers".into()))?;
    }
    Ok(headers)
}

/// The scheme, host and port of `url`: what a message about a request may name.
pub fn origin(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        (None, _) => format!("{}:", url.scheme()),
    }
}

/// A guest's string for a message: quoted and escaped when it has at most [`PREVIEW`]
/// characters, else only its length. Never a part of it: a cut could leave the head of a secret
/// the redactor no longer recognises.
pub fn preview(text: &str) -> String {
    if text.chars().nth(PREVIEW).is_some() {
        format!("of {} bytes", text.len())
    } else {
        format!("`{}`", text.escape_debug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn invalid(method: &str, url: &str, headers: &[(String, String)], body: usize) -> String {
        check(method, url, headers, Some(vec![0; body]))
            .expect_err("refused")
            .0
    }

    const URL: &str = "https://hooks.example/services/T000/B000/SECRETTOKEN?key=also-secret";

    #[test]
    fn an_ordinary_request_passes() {
        let ok = check(
            "post",
            URL,
            &pairs(&[("Accept", "application/json"), ("X-Api-Key", "k")]),
            Some(b"{}".to_vec()),
        )
        .unwrap();
        assert_eq!(ok.method, http::Method::POST);
        assert_eq!(ok.headers.len(), 2);
    }

    #[test]
    fn the_header_count_that_panicked_the_http_crate_is_an_invalid_request() {
        let many: Vec<(String, String)> = (0..24_600)
            .map(|i| (format!("x-h{i}"), "v".into()))
            .collect();
        assert!(invalid("GET", URL, &many, 0).contains("24600 request headers"));
        // Repeating one name (`append` of the same key) is counted the same way.
        let same = vec![("x-same".to_owned(), "v".to_owned()); 40_000];
        assert!(invalid("GET", URL, &same, 0).contains("over the limit of 100"));
        let at_cap: Vec<(String, String)> = (0..MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), "v".into()))
            .collect();
        assert!(check("GET", URL, &at_cap, None).is_ok());
    }

    #[test]
    fn header_sizes_are_bounded_one_by_one_and_in_all() {
        let big = "v".repeat(MAX_HEADER_BYTES);
        assert!(invalid("GET", URL, &pairs(&[("x-big", &big)]), 0).contains("x-big"));
        let seven_k = "v".repeat(7 << 10);
        let many: Vec<(String, String)> = (0..10)
            .map(|i| (format!("x-{i}"), seven_k.clone()))
            .collect();
        assert!(invalid("GET", URL, &many, 0).contains("in all"));
        let long_name = "x".repeat(MAX_HEADER_BYTES + 1);
        let message = invalid("GET", URL, &pairs(&[(&long_name, "v")]), 0);
        assert!(message.len() < 200, "the name is quoted in part: {message}");
    }

    #[test]
    fn url_length_body_size_and_method_are_bounded() {
        let long = format!("https://a.example/{}", "p".repeat(MAX_URL_BYTES));
        assert!(invalid("GET", &long, &[], 0).contains("URL is"));
        assert!(invalid("POST", URL, &[], MAX_BODY_BYTES + 1).contains("body"));
        assert!(check("POST", URL, &[], Some(vec![0; MAX_BODY_BYTES])).is_ok());
        for method in ["CONNECT", "TRACE", "G\u{0}ET", "", &"M".repeat(1 << 20)] {
            let message = invalid(method, URL, &[], 0);
            assert!(message.starts_with("method "), "{message}");
            assert!(message.len() < 200, "{message}");
        }
    }

    #[test]
    fn runner_headers_and_malformed_headers_are_refused_without_quoting_values() {
        for name in [
            "Host",
            "content-LENGTH",
            "Transfer-Encoding",
            "Expect",
            "Keep-Alive",
        ] {
            let message = invalid("GET", URL, &pairs(&[(name, "x")]), 0);
            assert!(message.contains("set by the runner"), "{message}");
        }
        assert!(invalid("GET", URL, &pairs(&[("bad header", "x")]), 0).contains("not valid"));
        let message = invalid(
            "GET",
            URL,
            &pairs(&[("X-Token", "SECRETTOKEN\nInjected: 1")]),
            0,
        );
        assert!(!message.contains("SECRETTOKEN"), "{message}");
    }

    #[test]
    fn no_message_quotes_the_urls_path_or_query() {
        let bad = "https://hooks.example:99999/services/SECRETTOKEN";
        let message = invalid("GET", bad, &[], 0);
        assert!(!message.contains("SECRETTOKEN"), "{message}");
        let url = Url::parse(URL).unwrap();
        assert_eq!(origin(&url), "https://hooks.example");
        let url = Url::parse("HTTPS://Hooks.Example:8443/a/SECRETTOKEN?x=y").unwrap();
        assert_eq!(origin(&url), "https://hooks.example:8443");
    }
}
