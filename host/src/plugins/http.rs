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
use super::request::{self, Checked, origin};

/// Sends plugin requests within the plugin's grants and limits.
#[derive(Debug, Clone)]
pub(crate) struct HttpGate {
    client: reqwest::Client,
    grants: Grants,
    limits: Limits,
}

/// The headers that follow a redirect to another origin (scheme, host or port): those that
/// describe what the plugin accepts or sends, never one that may carry a credential (any custom
/// header may: `X-Api-Key`, `X-Gitlab-Token`, `Authorization`, `Cookie`, ...).
const CROSS_ORIGIN_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "content-type",
    "user-agent",
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
    /// Errors name the method and the origin, never the URL's path or query.
    pub(crate) async fn fetch(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, HttpError> {
        let Checked {
            mut method,
            mut url,
            mut headers,
            mut body,
        } = request::check(
            &request.method,
            &request.url,
            &request.headers,
            request.body,
        )
        .map_err(|invalid| HttpError::InvalidRequest(invalid.0))?;
        let mut hops = 0u8;
        loop {
            self.grants
                .check_url(&url)
                .map_err(|denial| HttpError::Denied(denial.to_string()))?;
            let target = format!("{method} {}", origin(&url));
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = remaining.min(self.limits.http_timeout);
            if timeout.is_zero() {
                return Err(HttpError::Timeout(format!("no time left for {target}")));
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
                .map_err(|e| classify(e, &target, timeout))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(reqwest::header::LOCATION)
            {
                if hops >= self.limits.http_redirects {
                    return Err(HttpError::Denied(format!(
                        "{target}: more than {} redirects",
                        self.limits.http_redirects
                    )));
                }
                let next = redirect_target(&url, location, &target)?;
                if status == reqwest::StatusCode::SEE_OTHER
                    || ((status == reqwest::StatusCode::MOVED_PERMANENTLY
                        || status == reqwest::StatusCode::FOUND)
                        && method == reqwest::Method::POST)
                {
                    method = reqwest::Method::GET;
                    body = None;
                }
                if next.origin() != url.origin() {
                    // Another origin gets only headers that cannot carry a credential.
                    let mut kept = reqwest::header::HeaderMap::new();
                    for (name, value) in &headers {
                        if CROSS_ORIGIN_HEADERS.contains(&name.as_str()) {
                            kept.append(name.clone(), value.clone());
                        }
                    }
                    headers = kept;
                }
                url = next;
                hops += 1;
                continue;
            }
            let out = self.read_body(&mut response, &target, timeout).await?;
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
        target: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, HttpError> {
        let limit = self.limits.http_response_bytes;
        if let Some(len) = response.content_length()
            && usize::try_from(len).unwrap_or(usize::MAX) > limit
        {
            return Err(HttpError::TooLarge(format!(
                "{target}: response of {len} bytes is over the limit of {limit} bytes"
            )));
        }
        let mut out = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify(e, target, timeout))?
        {
            if out.len() + chunk.len() > limit {
                return Err(HttpError::TooLarge(format!(
                    "{target}: response body is over the limit of {limit} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// Where a redirect goes. Its `Location` is never quoted: it may carry a token too.
fn redirect_target(
    url: &Url,
    location: &reqwest::header::HeaderValue,
    target: &str,
) -> Result<Url, HttpError> {
    let location = location.to_str().map_err(|_| {
        HttpError::Connection(format!("{target}: redirect with a non-text Location"))
    })?;
    url.join(location)
        .map_err(|e| HttpError::Connection(format!("{target}: redirect to an invalid URL: {e}")))
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

/// The error of a request, naming `target` (method and origin). reqwest's own text names the
/// whole URL, so it is dropped from the error before its chain is read.
fn classify(err: reqwest::Error, target: &str, timeout: Duration) -> HttpError {
    let err = err.without_url();
    if let Some(forbidden) =
        crate::terminal::causes(&err).find_map(|cause| cause.downcast_ref::<ForbiddenAddresses>())
    {
        return HttpError::Denied(format!("{target}: {forbidden}"));
    }
    if err.is_timeout() {
        HttpError::Timeout(format!(
            "{target}: no response within {}s",
            timeout.as_secs_f32()
        ))
    } else {
        // The chain of a reqwest error holds the useful part (refused, reset, DNS, TLS).
        HttpError::Connection(format!("{target}: {}", crate::terminal::one_line(&err)))
    }
}
