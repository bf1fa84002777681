//! Which GitLab API calls an event makes, with their bodies. Pure.

use tagship_plugin::json::{event_kind_from_name, event_kind_name, event_kind_phrase};
use tagship_plugin::notify::{Event, EventKind};
use tagship_plugin::serde_json::{Value, json};
use tagship_plugin::url::encode_component;

/// The plugin's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// API base without a trailing slash, e.g. `https://gitlab.example.com/api/v4`.
    pub api_url: String,
    /// The project as a path segment: an id, or an encoded path.
    pub project: String,
    /// Issue to comment on.
    pub issue_iid: Option<String>,
    /// Merge request to comment on.
    pub merge_request_iid: Option<String>,
    /// Kinds that get a note; `None` means all.
    pub note_events: Option<Vec<EventKind>>,
    /// Whether stage events record deployments.
    pub record_deployment: bool,
    /// `ref` of the deployment record; `None` means the target version.
    pub git_ref: Option<String>,
    /// `sha` of the deployment record; `None` means the ref.
    pub sha: Option<String>,
    /// `tag` of the deployment record; `None` means "ref is the target version".
    pub tag: Option<bool>,
}

/// One API call: `POST {api_url}{path}` with `body`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Path below the API base, starting with `/`.
    pub path: String,
    /// JSON body.
    pub body: Value,
}

impl Settings {
    /// Reads the settings through `config` (which returns `None` for unset or empty keys).
    pub fn from_config(config: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |key: &str| {
            config(key).ok_or_else(|| {
                format!("missing config key `{key}`: set it under [plugins.NAME.config]")
            })
        };
        let boolean = |key: &str| -> Result<Option<bool>, String> {
            match config(key)
                .map(|v| v.trim().to_ascii_lowercase())
                .as_deref()
            {
                None => Ok(None),
                Some("true") => Ok(Some(true)),
                Some("false") => Ok(Some(false)),
                Some(other) => Err(format!(
                    "config `{key}`: `{other}` is not `true` or `false`"
                )),
            }
        };
        let iid = |key: &str| -> Result<Option<String>, String> {
            match config(key) {
                None => Ok(None),
                Some(v) if v.trim().bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(Some(v.trim().to_owned()))
                }
                Some(v) => Err(format!("config `{key}`: `{v}` is not a number")),
            }
        };
        let note_events = match config("note_events") {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|name| {
                        event_kind_from_name(name).ok_or_else(|| {
                            format!(
                                "config `note_events`: `{}` is not an event kind",
                                name.trim()
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            ),
        };
        let project = required("project")?;
        let project = project.trim();
        Ok(Self {
            api_url: required("api_url")?.trim().trim_end_matches('/').to_owned(),
            project: if project.bytes().all(|b| b.is_ascii_digit()) {
                project.to_owned()
            } else {
                encode_component(project)
            },
            issue_iid: iid("issue_iid")?,
            merge_request_iid: iid("merge_request_iid")?,
            note_events,
            record_deployment: boolean("record_deployment")?.unwrap_or(false),
            git_ref: config("ref").map(|r| r.trim().to_owned()),
            sha: config("sha").map(|s| s.trim().to_owned()),
            tag: boolean("tag")?,
        })
    }
}

/// The calls `event` makes under `settings`; an error when the settings can never do anything.
pub fn calls(event: &Event, settings: &Settings) -> Result<Vec<Call>, String> {
    let has_target = settings.issue_iid.is_some() || settings.merge_request_iid.is_some();
    if !has_target && !settings.record_deployment {
        return Err(
            "nothing to do: set `issue_iid`, `merge_request_iid` or `record_deployment = \"true\"`"
                .to_owned(),
        );
    }
    if event.kind == EventKind::Test && !has_target {
        return Err(
            "a test event posts a note only: set `issue_iid` or `merge_request_iid`".to_owned(),
        );
    }
    let project = &settings.project;
    let mut calls = Vec::new();
    let wants_note = event.kind == EventKind::Test
        || settings
            .note_events
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&event.kind));
    if wants_note {
        let body = json!({ "body": note(event) });
        if let Some(iid) = &settings.issue_iid {
            calls.push(Call {
                path: format!("/projects/{project}/issues/{iid}/notes"),
                body: body.clone(),
            });
        }
        if let Some(iid) = &settings.merge_request_iid {
            calls.push(Call {
                path: format!("/projects/{project}/merge_requests/{iid}/notes"),
                body,
            });
        }
    }
    if settings.record_deployment
        && let Some(status) = deployment_status(event.kind)
    {
        let version = &event.context.version;
        let git_ref = settings.git_ref.clone().unwrap_or_else(|| version.clone());
        calls.push(Call {
            path: format!("/projects/{project}/deployments"),
            body: json!({
                "environment": event.context.environment,
                "sha": settings.sha.clone().unwrap_or_else(|| git_ref.clone()),
                "ref": git_ref,
                "tag": settings.tag.unwrap_or(&git_ref == version),
                "status": status,
            }),
        });
    }
    Ok(calls)
}

/// The deployment status a stage event records.
fn deployment_status(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::StageStarted => Some("running"),
        EventKind::StageSucceeded => Some("success"),
        EventKind::StageFailed => Some("failed"),
        _ => None,
    }
}

/// The Markdown note for `event`.
#[must_use]
pub fn note(event: &Event) -> String {
    let ctx = &event.context;
    let versions = match &ctx.previous_version {
        Some(previous) => format!("`{previous}` → `{}`", ctx.version),
        None => format!("`{}`", ctx.version),
    };
    let mut text = format!(
        "**{}** {versions}: {} on `{}` (environment `{}`)",
        ctx.component,
        event_kind_phrase(event.kind),
        ctx.stage,
        ctx.environment
    );
    if !event.message.trim().is_empty() {
        text.push_str("\n\n> ");
        text.push_str(&event.message.trim().replace('\n', "\n> "));
    }
    let pipeline = ctx
        .pipeline_url
        .as_ref()
        .map_or_else(String::new, |url| format!("[pipeline]({url}) · "));
    format!(
        "{text}\n\n{pipeline}deploy `{}` · `{}` · {}",
        event.deploy_id,
        event_kind_name(event.kind),
        event.timestamp
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagship_plugin::notify::DeployContext;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_config(|key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    /// The required keys plus `extra`; a key in `extra` wins.
    fn base(extra: &[(&str, &str)]) -> Settings {
        let mut pairs = extra.to_vec();
        pairs.extend_from_slice(&[
            ("api_url", "https://gitlab.example.com/api/v4/"),
            ("project", "gitlab-org/container-registry"),
        ]);
        settings(&pairs).unwrap()
    }

    fn event(kind: EventKind) -> Event {
        Event {
            kind,
            deploy_id: "d-1".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            message: "all good".into(),
            context: DeployContext {
                component: "registry".into(),
                version: "v3.1.0".into(),
                previous_version: Some("v3.0.0".into()),
                stage: "gstg-cny".into(),
                environment: "gstg".into(),
                pipeline_url: Some("https://ci/p/1".into()),
                workloads: Vec::new(),
                app_version: None,
            },
        }
    }

    fn paths(calls: &[Call]) -> Vec<&str> {
        calls.iter().map(|c| c.path.as_str()).collect()
    }

    #[test]
    fn a_project_path_is_encoded_and_an_id_is_not() {
        assert_eq!(base(&[]).project, "gitlab-org%2Fcontainer-registry");
        assert_eq!(base(&[("project", "278964")]).project, "278964");
        assert_eq!(base(&[]).api_url, "https://gitlab.example.com/api/v4");
    }

    #[test]
    fn notes_go_to_the_issue_and_the_merge_request() {
        let s = base(&[("issue_iid", "12"), ("merge_request_iid", "34")]);
        let calls = calls(&event(EventKind::StageFailed), &s).unwrap();
        assert_eq!(
            paths(&calls),
            [
                "/projects/gitlab-org%2Fcontainer-registry/issues/12/notes",
                "/projects/gitlab-org%2Fcontainer-registry/merge_requests/34/notes",
            ]
        );
        assert!(
            calls[0].body["body"]
                .as_str()
                .unwrap()
                .contains("stage failed on `gstg-cny`")
        );
    }

    #[test]
    fn stage_events_record_deployments_with_their_status() {
        let s = base(&[("record_deployment", "true")]);
        for (kind, status) in [
            (EventKind::StageStarted, "running"),
            (EventKind::StageSucceeded, "success"),
            (EventKind::StageFailed, "failed"),
        ] {
            let calls = calls(&event(kind), &s).unwrap();
            assert_eq!(
                paths(&calls),
                ["/projects/gitlab-org%2Fcontainer-registry/deployments"]
            );
            assert_eq!(
                calls[0].body,
                json!({"environment": "gstg", "sha": "v3.1.0", "ref": "v3.1.0", "tag": true, "status": status})
            );
        }
        assert!(
            calls(&event(EventKind::DeploySucceeded), &s)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ref_and_sha_come_from_config() {
        let s = base(&[
            ("record_deployment", "true"),
            ("ref", "main"),
            ("sha", "abc123"),
        ]);
        let calls = calls(&event(EventKind::StageSucceeded), &s).unwrap();
        assert_eq!(calls[0].body["ref"], "main");
        assert_eq!(calls[0].body["sha"], "abc123");
        assert_eq!(calls[0].body["tag"], false);
    }

    #[test]
    fn a_test_event_posts_a_note_only() {
        let s = base(&[
            ("issue_iid", "1"),
            ("record_deployment", "true"),
            ("note_events", "stage-failed"),
        ]);
        let calls = calls(&event(EventKind::Test), &s).unwrap();
        assert_eq!(
            paths(&calls),
            ["/projects/gitlab-org%2Fcontainer-registry/issues/1/notes"]
        );
        let s = base(&[("record_deployment", "true")]);
        assert!(
            super::calls(&event(EventKind::Test), &s)
                .unwrap_err()
                .contains("posts a note only")
        );
    }

    #[test]
    fn note_events_filter_the_notes() {
        let s = base(&[
            ("issue_iid", "1"),
            ("note_events", "stage-failed, rollback-failed"),
        ]);
        assert!(
            calls(&event(EventKind::StageStarted), &s)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            calls(&event(EventKind::RollbackFailed), &s).unwrap().len(),
            1
        );
    }

    #[test]
    fn settings_that_do_nothing_are_an_error() {
        assert!(
            calls(&event(EventKind::StageStarted), &base(&[]))
                .unwrap_err()
                .starts_with("nothing to do")
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        assert_eq!(
            settings(&[("project", "1")]).unwrap_err(),
            "missing config key `api_url`: set it under [plugins.NAME.config]"
        );
        let bad = settings(&[("api_url", "u"), ("project", "1"), ("issue_iid", "x1")]);
        assert_eq!(bad.unwrap_err(), "config `issue_iid`: `x1` is not a number");
        let bad = settings(&[("api_url", "u"), ("project", "1"), ("note_events", "nope")]);
        assert_eq!(
            bad.unwrap_err(),
            "config `note_events`: `nope` is not an event kind"
        );
    }

    #[test]
    fn the_note_reads_as_markdown() {
        assert_eq!(
            note(&event(EventKind::StageSucceeded)),
            "**registry** `v3.0.0` → `v3.1.0`: stage succeeded on `gstg-cny` (environment `gstg`)\n\n\
             > all good\n\n[pipeline](https://ci/p/1) · deploy `d-1` · `stage-succeeded` · 2026-01-01T00:00:00Z"
        );
    }
}
