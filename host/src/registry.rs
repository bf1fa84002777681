//! The container registry's HTTP API (Docker Registry HTTP API v2, as registry.gitlab.com and
//! Docker Hub serve it): what digest a tag points at, for `pin = "digest"`.
//!
//! `HEAD /v2/<name>/manifests/<tag>` answers the digest in its `Docker-Content-Digest` header.
//! Registries that want a token answer 401 with a `WWW-Authenticate: Bearer realm=…,service=…,
//! scope=…` challenge; the client then asks the realm for a token (anonymously, or with the
//! configured credentials as HTTP Basic) and asks again with it.
//!
//! Must not print, and never puts a credential or token into an error.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, WWW_AUTHENTICATE};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of a request that failed in transport or with a 5xx.
const ATTEMPTS: u32 = 3;
/// The manifest media types asked for, as a container runtime asks (an image index first, so
/// a multi-architecture tag gives the digest every node resolves the same way).
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Where a repository's manifests are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The registry's base URL, e.g. `https://registry.example.com`.
    pub base_url: String,
    /// The repository's name inside the registry, e.g. `gitlab-org/container-registry`.
    pub name: String,
}

impl Repository {
    /// The repository of an image reference's repository part (no tag): `host/name` →
    /// `https://host` and `name`; a reference without a registry host is Docker Hub's
    /// (`busybox` → `library/busybox`). `base_url` overrides the URL the host gives.
    pub fn of(image_repository: &str, base_url: Option<&str>) -> Self {
        let (host, name) = split_host(image_repository);
        let (default_url, name) = match host {
            Some(host) => (format!("https://{host}"), name.to_owned()),
            None if name.contains('/') => {
                ("https://registry-1.docker.io".to_owned(), name.to_owned())
            }
            None => (
                "https://registry-1.docker.io".to_owned(),
                format!("library/{name}"),
            ),
        };
        Repository {
            base_url: base_url.map_or(default_url, |u| u.trim_end_matches('/').to_owned()),
            name,
        }
    }
}

/// The registry host of an image repository, if it names one, and the rest: the first path
/// segment is a host when it has a `.` or a `:`, or is `localhost` (Docker's rule).
pub fn split_host(image_repository: &str) -> (Option<&str>, &str) {
    match image_repository.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, image_repository),
    }
}

/// Credentials for the registry (sent only to its token realm, or as Basic auth when the
/// registry asks for it).
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Why a digest could not be resolved. Messages name the repository, the tag and the URL
/// asked, never a credential or token.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The tag does not exist.
    #[error(
        "the registry at {url} has no tag `{tag}` in repository `{name}` (manifest unknown); \
         was the release's image pushed?"
    )]
    TagNotFound {
        /// The registry's base URL.
        url: String,
        /// The repository.
        name: String,
        /// The tag.
        tag: String,
    },
    /// The registry refused the credentials (or wants some).
    #[error(
        "the registry at {url} refused access to repository `{name}` ({status}){hint}",
        hint = if *.with_credentials {
            ": check the credentials of `registry_user_env`/`registry_password_env`"
        } else {
            ": it needs credentials; set `registry_user_env` and `registry_password_env` in [component]"
        }
    )]
    Denied {
        /// The registry's base URL.
        url: String,
        /// The repository.
        name: String,
        /// The status of the refusal.
        status: u16,
        /// Whether credentials were sent.
        with_credentials: bool,
    },
    /// The registry answered something else.
    #[error("the registry at {url} answered {status} for `{name}:{tag}`: {detail}")]
    Unexpected {
        /// The registry's base URL.
        url: String,
        /// The repository.
        name: String,
        /// The tag.
        tag: String,
        /// The HTTP status.
        status: u16,
        /// What it said (its JSON error's code and message, or the body's start).
        detail: String,
    },
    /// No answer at all.
    #[error("cannot reach the registry at {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The transport failure.
        reason: String,
    },
}

/// Resolves what digest `tag` of `repository` points at, e.g. `sha256:4f…`.
pub async fn resolve_digest(
    repository: &Repository,
    tag: &str,
    credentials: Option<&Credentials>,
) -> Result<String, RegistryError> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| RegistryError::Unreachable {
            url: repository.base_url.clone(),
            reason: crate::terminal::one_line(&e),
        })?;
    let url = format!(
        "{}/v2/{}/manifests/{}",
        repository.base_url, repository.name, tag
    );
    let mut authorization: Option<Auth> = None;
    let mut authenticated = false;
    loop {
        let response = send(&repository.base_url, || {
            let request = client.head(&url).header(ACCEPT, MANIFEST_TYPES);
            match (&authorization, credentials) {
                (Some(Auth::Bearer(token)), _) => request.bearer_auth(token),
                (Some(Auth::Basic), Some(c)) => request.basic_auth(&c.user, Some(&c.password)),
                _ => request,
            }
        })
        .await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED && !authenticated {
            authenticated = true;
            authorization =
                Some(authorize(&client, repository, response.headers(), credentials).await?);
            continue;
        }
        return match status {
            s if s.is_success() => {
                digest_of(response.headers()).ok_or_else(|| RegistryError::Unexpected {
                    url: repository.base_url.clone(),
                    name: repository.name.clone(),
                    tag: tag.to_owned(),
                    status: s.as_u16(),
                    detail: "no valid `Docker-Content-Digest` header in the answer".into(),
                })
            }
            StatusCode::NOT_FOUND => Err(RegistryError::TagNotFound {
                url: repository.base_url.clone(),
                name: repository.name.clone(),
                tag: tag.to_owned(),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Denied {
                url: repository.base_url.clone(),
                name: repository.name.clone(),
                status: status.as_u16(),
                with_credentials: credentials.is_some(),
            }),
            other => Err(RegistryError::Unexpected {
                url: repository.base_url.clone(),
                name: repository.name.clone(),
                tag: tag.to_owned(),
                status: other.as_u16(),
                detail: other.canonical_reason().unwrap_or("").to_owned(),
            }),
        };
    }
}

/// Sends the request `make` builds, again after a transport failure or a 5xx (at most
/// [`ATTEMPTS`] times).
async fn send(
    base_url: &str,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, RegistryError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match make().send().await {
            Ok(response) if response.status().is_server_error() && attempt < ATTEMPTS => {}
            Ok(response) => return Ok(response),
            Err(_) if attempt < ATTEMPTS => {}
            Err(e) => {
                return Err(RegistryError::Unreachable {
                    url: base_url.to_owned(),
                    reason: crate::terminal::one_line(&e.without_url()),
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
}

/// How a request authenticates.
enum Auth {
    /// A token from the registry's realm.
    Bearer(String),
    /// The credentials, as HTTP Basic.
    Basic,
}

/// What answers the registry's challenge in `headers`: a bearer token from its realm, or Basic
/// credentials.
async fn authorize(
    client: &reqwest::Client,
    repository: &Repository,
    headers: &HeaderMap,
    credentials: Option<&Credentials>,
) -> Result<Auth, RegistryError> {
    let denied = || RegistryError::Denied {
        url: repository.base_url.clone(),
        name: repository.name.clone(),
        status: 401,
        with_credentials: credentials.is_some(),
    };
    let challenge = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(denied)?;
    match parse_challenge(challenge) {
        Some(Challenge::Basic) => {
            credentials.ok_or_else(denied)?;
            Ok(Auth::Basic)
        }
        Some(Challenge::Bearer {
            realm,
            service,
            scope,
        }) => {
            let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", repository.name));
            let mut query = vec![("scope", scope)];
            if let Some(service) = service {
                query.push(("service", service));
            }
            let realm_url = url::Url::parse_with_params(&realm, &query).map_err(|e| {
                RegistryError::Unexpected {
                    url: repository.base_url.clone(),
                    name: repository.name.clone(),
                    tag: String::new(),
                    status: 401,
                    detail: format!("its token realm `{realm}` is not a URL: {e}"),
                }
            })?;
            let response = send(&realm, || {
                let request = client.get(realm_url.as_str());
                match credentials {
                    Some(c) => request.basic_auth(&c.user, Some(&c.password)),
                    None => request,
                }
            })
            .await?;
            if !response.status().is_success() {
                return Err(RegistryError::Denied {
                    url: realm.clone(),
                    name: repository.name.clone(),
                    status: response.status().as_u16(),
                    with_credentials: credentials.is_some(),
                });
            }
            let text = response
                .text()
                .await
                .map_err(|e| RegistryError::Unreachable {
                    url: realm.clone(),
                    reason: crate::terminal::one_line(&e.without_url()),
                })?;
            let body: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| RegistryError::Unexpected {
                    url: realm.clone(),
                    name: repository.name.clone(),
                    tag: String::new(),
                    status: 200,
                    detail: format!("its token answer is not JSON: {e}"),
                })?;
            let token = body["token"]
                .as_str()
                .or_else(|| body["access_token"].as_str())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| RegistryError::Unexpected {
                    url: realm.clone(),
                    name: repository.name.clone(),
                    tag: String::new(),
                    status: 200,
                    detail: "its token answer has no `token`".into(),
                })?;
            Ok(Auth::Bearer(token.to_owned()))
        }
        None => Err(denied()),
    }
}

/// An authentication challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    /// `Basic realm=…`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    for (key, value) in parameters(params) {
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            "scope" => scope = Some(value),
            _ => {}
        }
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
        scope,
    })
}

/// `key="value", key=value` pairs of a challenge (values may hold commas inside quotes).
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_owned();
        let after = rest[eq + 1..].trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (quoted[..end].to_owned(), &quoted[end + 1..]),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_owned(), &after[end..]),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.push((key, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// A `sha256:<64 hex>` digest from the `Docker-Content-Digest` header.
fn digest_of(headers: &HeaderMap) -> Option<String> {
    let digest = headers.get("docker-content-digest")?.to_str().ok()?.trim();
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_is_asked_at_its_registry_host_or_docker_hub() {
        let cases = [
            (
                "registry.example.com/gitlab-org/registry",
                None,
                "https://registry.example.com",
                "gitlab-org/registry",
            ),
            (
                "localhost:5000/registry",
                None,
                "https://localhost:5000",
                "registry",
            ),
            (
                "busybox",
                None,
                "https://registry-1.docker.io",
                "library/busybox",
            ),
            (
                "bitnami/redis",
                None,
                "https://registry-1.docker.io",
                "bitnami/redis",
            ),
            (
                "registry.example.com/registry",
                Some("http://127.0.0.1:9000/"),
                "http://127.0.0.1:9000",
                "registry",
            ),
        ];
        for (image, base, url, name) in cases {
            let repository = Repository::of(image, base);
            assert_eq!(
                (repository.base_url.as_str(), repository.name.as_str()),
                (url, name),
                "{image}"
            );
        }
    }

    #[test]
    fn challenges_are_read_as_registries_send_them() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://gitlab.com/jwt/auth",service="container_registry",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://gitlab.com/jwt/auth".into(),
                service: Some("container_registry".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token", service="registry.docker.io", scope="repository:library/busybox:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            }),
            "a comma inside quotes belongs to the value"
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn only_a_well_formed_sha256_digest_is_taken() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("Docker-Content-Digest", value.parse().unwrap());
            digest_of(&headers)
        };
        let good = format!("sha256:{}", "a1".repeat(32));
        assert_eq!(with(&good), Some(good.clone()));
        assert_eq!(with("sha256:abc"), None);
        assert_eq!(with(&format!("sha512:{}", "a1".repeat(32))), None);
        assert_eq!(with(&format!("sha256:{}", "zz".repeat(32))), None);
        assert_eq!(digest_of(&HeaderMap::new()), None);
    }

    #[test]
    fn credentials_never_show_their_password() {
        let c = Credentials {
            user: "ci".into(),
            password: "hunter2-secret".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
