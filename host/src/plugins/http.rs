//! Outbound HTTP for plugins: the `tagship:plugin/http` import.
//!
//! Architecture invariant: every request and every redirect hop passes [`Grants::check_url`]
//! before a connection is made. The `Host` header always comes from the checked URL.

use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use url::Url;

use super::bindings::wit_http::{HttpError, Request, Response};
use super::grants::Grants;
use super::limits::Limits;

/// Sends plugin requests within the plugin's grants and limits.
#[derive(Debug, Clone)]
pub(crate) struct HttpGate {
    client: reqwest::Client,
    grants: Grants,
    limits: Limits,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Headers a plugin may not set: the runner derives them from the checked URL and the body.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "proxy-authorization",
    "te",
    "trailer",
];

impl HttpGate {
    pub(crate) fn new(grants: Grants, limits: Limits) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(GuardedResolver))
            .connect_timeout(limits.http_connect_timeout)
            .user_agent(concat!("tagship/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpGate {
            client,
            grants,
            limits,
        })
    }

    /// Sends `request`, following at most `http_redirects` redirects, each re-checked.
    pub(crate) async fn fetch(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, HttpError> {
        let method = request.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(HttpError::InvalidRequest(format!(
                "method `{}` is not allowed (one of {})",
                request.method,
                METHODS.join(", ")
            )));
        }
        let mut url = Url::parse(&request.url).map_err(|e| {
            HttpError::InvalidRequest(format!("`{}` is not a valid URL: {e}", request.url))
        })?;
        let mut headers = plugin_headers(&request.headers)?;
        let mut method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
        let mut body = request.body;
        let mut hops = 0u8;
        loop {
            self.grants
                .check_url(&url)
                .map_err(|denial| HttpError::Denied(denial.to_string()))?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = remaining.min(self.limits.http_timeout);
            if timeout.is_zero() {
                return Err(HttpError::Timeout(format!(
                    "no time left for {method} {url}"
                )));
            }
            let mut builder = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .timeout(timeout);
            if let Some(bytes) = &body {
                builder = builder.body(bytes.clone());
            }
            let mut response = builder
                .send()
                .await
                .map_err(|e| classify(&e, &method, &url, timeout))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(reqwest::header::LOCATION)
            {
                if hops >= self.limits.http_redirects {
                    return Err(HttpError::Denied(format!(
                        "{method} {url}: more than {} redirects",
                        self.limits.http_redirects
                    )));
                }
                let next = redirect_target(&url, location, &method)?;
                if status == reqwest::StatusCode::SEE_OTHER
                    || ((status == reqwest::StatusCode::MOVED_PERMANENTLY
                        || status == reqwest::StatusCode::FOUND)
                        && method == reqwest::Method::POST)
                {
                    method = reqwest::Method::GET;
                    body = None;
                }
                if next.host_str() != url.host_str()
                    || next.port_or_known_default() != url.port_or_known_default()
                {
                    // Credentials meant for one host never follow a redirect to another.
                    headers.remove(reqwest::header::AUTHORIZATION);
                    headers.remove("private-token");
                    headers.remove(reqwest::header::COOKIE);
                }
                url = next;
                hops += 1;
                continue;
            }
            let out = self
                .read_body(&mut response, &method, &url, timeout)
                .await?;
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            return Ok(Response {
                status: status.as_u16(),
                headers,
                body: out,
            });
        }
    }
}

impl HttpGate {
    /// Reads the body, refusing it as soon as it passes the size limit.
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        method: &reqwest::Method,
        url: &Url,
        timeout: Duration,
    ) -> Result<Vec<u8>, HttpError> {
        let limit = self.limits.http_response_bytes;
        if let Some(len) = response.content_length()
            && usize::try_from(len).unwrap_or(usize::MAX) > limit
        {
            return Err(HttpError::TooLarge(format!(
                "{method} {url}: response of {len} bytes is over the limit of {limit} bytes"
            )));
        }
        let mut out = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify(&e, method, url, timeout))?
        {
            if out.len() + chunk.len() > limit {
                return Err(HttpError::TooLarge(format!(
                    "{method} {url}: response body is over the limit of {limit} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// The plugin's headers, refusing those the runner sets itself.
fn plugin_headers(given: &[(String, String)]) -> Result<reqwest::header::HeaderMap, HttpError> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in given {
        if FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(HttpError::InvalidRequest(format!(
                "header `{name}` is set by the runner and cannot be sent by a plugin"
            )));
        }
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| HttpError::InvalidRequest(format!("header name `{name}`: {e}")))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|e| HttpError::InvalidRequest(format!("header `{name}` value: {e}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn redirect_target(
    url: &Url,
    location: &reqwest::header::HeaderValue,
    method: &reqwest::Method,
) -> Result<Url, HttpError> {
    let location = location.to_str().map_err(|_| {
        HttpError::Connection(format!("{method} {url}: redirect with a non-text Location"))
    })?;
    url.join(location).map_err(|e| {
        HttpError::Connection(format!("{method} {url}: bad redirect `{location}`: {e}"))
    })
}

/// Resolves granted host names, dropping the addresses a name may not reach
/// ([`super::grants::name_may_reach`]). The connection is made to the addresses returned here,
/// so a DNS answer cannot send a granted name to loopback or the metadata service, however it
/// changes between lookups.
struct GuardedResolver;

/// A granted name resolved only to addresses a name may not reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{name}` resolves only to {addresses}: a granted host name may not reach loopback, link-local (cloud metadata) or unspecified addresses; grant the IP address itself to reach a local service"
)]
struct ForbiddenAddresses {
    name: String,
    addresses: String,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<std::net::SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| super::grants::name_may_reach(a.ip()))
                .collect();
            if allowed.is_empty() && !all.is_empty() {
                let addresses: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                return Err(Box::new(ForbiddenAddresses {
                    name: host,
                    addresses: addresses.join(", "),
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn classify(
    err: &reqwest::Error,
    method: &reqwest::Method,
    url: &Url,
    timeout: Duration,
) -> HttpError {
    if let Some(forbidden) =
        crate::report::causes(err).find_map(|cause| cause.downcast_ref::<ForbiddenAddresses>())
    {
        return HttpError::Denied(format!("{method} {url}: {forbidden}"));
    }
    if err.is_timeout() {
        HttpError::Timeout(format!(
            "{method} {url}: no response within {}s",
            timeout.as_secs_f32()
        ))
    } else {
        // The chain of a reqwest error holds the useful part (refused, reset, DNS, TLS).
        HttpError::Connection(crate::report::one_line(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Result<reqwest::header::HeaderMap, HttpError> {
        plugin_headers(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_plugin_cannot_set_the_host_header_or_framing_headers() {
        for name in [
            "Host",
            "host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
        ] {
            let err = headers(&[(name, "x")]).unwrap_err();
            assert!(
                matches!(err, HttpError::InvalidRequest(ref m) if m.contains("set by the runner")),
                "{name}"
            );
        }
    }

    #[test]
    fn ordinary_headers_pass_and_malformed_ones_are_invalid_requests() {
        let ok = headers(&[("Accept", "application/json"), ("PRIVATE-TOKEN", "t")]).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(matches!(
            headers(&[("bad header", "x")]),
            Err(HttpError::InvalidRequest(_))
        ));
        assert!(matches!(
            headers(&[("X-Ok", "line\nbreak")]),
            Err(HttpError::InvalidRequest(_))
        ));
    }
}
