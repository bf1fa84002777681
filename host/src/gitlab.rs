//! GitLab's pipeline trigger API: `POST {api}/projects/{project}/trigger/pipeline` with the
//! trigger token, the ref and variables as form fields. Used by `tagship trigger` to start the
//! deploy project's pipeline from the service's tag pipeline.
//!
//! The token is a secret: it is sent only as the `token` form field, never put in a URL, and
//! removed from every error message.

use std::time::Duration;

/// A trigger request.
#[derive(Clone)]
pub struct TriggerRequest {
    /// The API v4 base, e.g. `https://gitlab.example.com/api/v4`.
    pub api: url::Url,
    /// The project's numeric id or full path (`group/deploy-registry`).
    pub project: String,
    /// The branch or tag to run the pipeline on.
    pub git_ref: String,
    /// The trigger token.
    pub token: String,
    /// Pipeline variables.
    pub variables: Vec<(String, String)>,
}

impl std::fmt::Debug for TriggerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerRequest")
            .field("api", &self.api.as_str())
            .field("project", &self.project)
            .field("git_ref", &self.git_ref)
            .field("token", &"[redacted]")
            .field("variables", &self.variables)
            .finish()
    }
}

/// The pipeline GitLab created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggered {
    /// Its id.
    pub id: u64,
    /// Its page.
    pub web_url: String,
}

/// Why a trigger failed.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// 401: the token is wrong, expired or revoked.
    #[error("GitLab refused the trigger token (401) at {url}")]
    Unauthorized {
        /// The endpoint.
        url: String,
    },
    /// 404: no such project, or the token cannot see it.
    #[error("GitLab has no project `{project}` the token can trigger (404) at {url}")]
    NotFound {
        /// The project asked for.
        project: String,
        /// The endpoint.
        url: String,
    },
    /// Another 4xx, e.g. a ref that does not exist (400).
    #[error("GitLab rejected the trigger ({status}) at {url}: {body}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The endpoint.
        url: String,
        /// GitLab's message.
        body: String,
    },
    /// 5xx, 429 or no connection, still after every attempt.
    #[error("GitLab did not accept the trigger after {attempts} attempts at {url}: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The endpoint.
        url: String,
        /// The last failure.
        last: String,
    },
    /// GitLab answered 2xx with something that is not a pipeline.
    #[error("GitLab's answer at {url} is not a pipeline: {reason}")]
    Unreadable {
        /// The endpoint.
        url: String,
        /// Why.
        reason: String,
    },
}

/// How often and how long to retry transient failures.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The first pause; doubled after each attempt.
    pub backoff: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The endpoint for `project`: its path URL-encoded as one segment (`group%2Fproject`).
#[must_use]
pub fn trigger_url(api: &url::Url, project: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(project.as_bytes()).collect();
    format!(
        "{}/projects/{encoded}/trigger/pipeline",
        api.as_str().trim_end_matches('/')
    )
}

/// Starts the pipeline, retrying 5xx, 429 and connection failures.
///
/// # Errors
///
/// [`TriggerError`], with the token removed from every message.
pub async fn trigger(request: &TriggerRequest, retry: Retry) -> Result<Triggered, TriggerError> {
    let url = trigger_url(&request.api, &request.project);
    let client = reqwest::Client::builder()
        .timeout(retry.timeout)
        .user_agent(concat!("tagship/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TriggerError::Unavailable {
            attempts: 0,
            url: url.clone(),
            last: e.to_string(),
        })?;
    let mut form: Vec<(String, String)> = vec![
        ("token".into(), request.token.clone()),
        ("ref".into(), request.git_ref.clone()),
    ];
    for (key, value) in &request.variables {
        form.push((format!("variables[{key}]"), value.clone()));
    }
    let redact = |text: String| {
        if request.token.is_empty() {
            text
        } else {
            text.replace(&request.token, "[redacted]")
        }
    };
    let attempts = retry.attempts.max(1);
    let mut pause = retry.backoff;
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            tracing::info!(
                "trigger attempt {attempt}/{attempts} in {}s: {last}",
                pause.as_secs()
            );
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        let response = match client.post(&url).form(&form).send().await {
            Ok(response) => response,
            Err(e) => {
                last = redact(crate::terminal::one_line(&e));
                continue;
            }
        };
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect::<String>();
        let body = redact(body);
        match status {
            200..=299 => return parse_pipeline(&body, &url),
            401 => return Err(TriggerError::Unauthorized { url }),
            404 => {
                return Err(TriggerError::NotFound {
                    project: request.project.clone(),
                    url,
                });
            }
            429 | 500..=599 => last = format!("HTTP {status}: {}", body.trim()),
            _ => {
                return Err(TriggerError::Rejected {
                    status,
                    url,
                    body: body.trim().to_owned(),
                });
            }
        }
    }
    Err(TriggerError::Unavailable {
        attempts,
        url,
        last,
    })
}

fn parse_pipeline(body: &str, url: &str) -> Result<Triggered, TriggerError> {
    let unreadable = |reason: String| TriggerError::Unreadable {
        url: url.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| unreadable(e.to_string()))?;
    let id = value["id"]
        .as_u64()
        .ok_or_else(|| unreadable("no numeric `id`".into()))?;
    let web_url = value["web_url"]
        .as_str()
        .ok_or_else(|| unreadable("no `web_url`".into()))?
        .to_owned();
    Ok(Triggered { id, web_url })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_path_is_one_encoded_segment() {
        let api = url::Url::parse("https://gitlab.example.com/api/v4/").unwrap();
        assert_eq!(
            trigger_url(&api, "gitlab-org/deploy/registry"),
            "https://gitlab.example.com/api/v4/projects/gitlab-org%2Fdeploy%2Fregistry/trigger/pipeline"
        );
        assert_eq!(
            trigger_url(&api, "278964"),
            "https://gitlab.example.com/api/v4/projects/278964/trigger/pipeline"
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let request = TriggerRequest {
            api: url::Url::parse("https://gitlab.example.com/api/v4").unwrap(),
            project: "p".into(),
            git_ref: "main".into(),
            token: "glptt-very-secret".into(),
            variables: vec![],
        };
        assert!(!format!("{request:?}").contains("very-secret"));
    }

    #[test]
    fn a_pipeline_answer_is_read_and_anything_else_is_named() {
        let ok = parse_pipeline(
            r#"{"id": 42, "web_url": "https://gitlab.example.com/p/-/pipelines/42", "status": "created"}"#,
            "u",
        )
        .unwrap();
        assert_eq!(ok.id, 42);
        let err = parse_pipeline(r#"{"message": "hi"}"#, "u").unwrap_err();
        assert!(err.to_string().contains("no numeric `id`"), "{err}");
    }
}
