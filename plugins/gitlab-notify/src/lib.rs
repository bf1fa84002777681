//! Built-in notifier `gitlab-notify`: comments on a GitLab issue or merge request and records
//! deployments in GitLab, through the REST API v4.
//!
//! Config:
//! - `api_url` (required), e.g. `https://gitlab.example.com/api/v4`;
//! - `project` (required): numeric id or path (`group/project`, URL-encoded for you);
//! - `issue_iid` and/or `merge_request_iid` (optional): post a note there for each event;
//! - `note_events` (optional): comma list of event kinds that get a note (default: all);
//! - `record_deployment` (default `false`): `true` records a deployment of the stage's
//!   environment: `running` on `stage-started`, `success` on `stage-succeeded`, `failed` on
//!   `stage-failed`;
//! - `ref` (default: the target version), `tag` (default `true` when `ref` is the target version)
//!   and `sha` (default: `ref`; set it to the commit SHA so GitLab can link the commit) for the
//!   deployment record;
//! - `token_secret` (default `GITLAB_TOKEN`): the name of the secret holding an access token
//!   (scope `api`), sent as `PRIVATE-TOKEN`.
//!
//! Secrets: the one named by `token_secret`. Grants: the GitLab host.
//!
//! Simplification: a plugin call is stateless, so each stage event creates a new deployment
//! record (`POST /projects/:id/deployments`) with that event's status instead of updating the
//! one created at `stage-started`; GitLab shows the latest per environment. A `test` event only
//! posts a note. Every call is attempted; the error lists each one that failed.

mod plan;

use tagship_plugin::http::{Request, status_error};
use tagship_plugin::notify::{Event, Guest};

use crate::plan::Settings;

struct GitlabNotify;

impl Guest for GitlabNotify {
    fn notify(event: Event) -> Result<(), String> {
        let settings = Settings::from_config(|key| {
            tagship_plugin::config(key).filter(|v| !v.trim().is_empty())
        })?;
        let calls = plan::calls(&event, &settings)?;
        if calls.is_empty() {
            return Ok(());
        }
        let token_name = tagship_plugin::config_or("token_secret", "GITLAB_TOKEN");
        let token = tagship_plugin::require_secret(token_name.trim())?;
        let failures: Vec<String> = calls
            .iter()
            .filter_map(|call| {
                let url = format!("{}{}", settings.api_url, call.path);
                let outcome = Request::post(url.clone())
                    .header("PRIVATE-TOKEN", &token)
                    .json(&call.body)
                    .send();
                match outcome {
                    Ok(response) if response.is_success() => None,
                    Ok(response) => Some(format!(
                        "POST {url} answered {}",
                        status_error(response.status, &response.body)
                    )),
                    Err(e) => Some(format!("POST {url}: {}", e.describe())),
                }
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

tagship_plugin::export_notifier!(GitlabNotify);
