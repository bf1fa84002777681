//! `tagship trigger`: from the service's tag pipeline, start the deploy project's pipeline
//! through GitLab's pipeline trigger API, passing the version to deploy.

use clap::Args;
use serde_json::json;

use super::{CommandError, OutputFormat, common};
use crate::exit::Outcome;
use crate::gitlab::{Retry, TriggerError, TriggerRequest, trigger};
use crate::terminal;

/// `trigger` arguments.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The version the triggered pipeline deploys (passed as `TAGSHIP_VERSION`). Default:
    /// `TAGSHIP_VERSION`, else `CI_COMMIT_TAG`.
    #[arg(long, env = "TAGSHIP_VERSION")]
    pub version: Option<String>,

    /// The deploy project: numeric id or full path (`group/deploy-registry`).
    #[arg(long)]
    pub project: String,

    /// The deploy project's branch or tag to run the pipeline on.
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: String,

    /// GitLab's API v4 base, e.g. `https://gitlab.example.com/api/v4`. Default: `CI_API_V4_URL`
    /// (set by GitLab CI).
    #[arg(long, env = "CI_API_V4_URL", value_name = "URL")]
    pub gitlab_url: Option<String>,

    /// The environment variable holding the pipeline trigger token (never printed).
    #[arg(long, default_value = "TAGSHIP_TRIGGER_TOKEN", value_name = "NAME")]
    pub token_env: String,

    /// Another variable for the triggered pipeline (repeatable), e.g. `--variable DRY_RUN=1`.
    #[arg(long, value_name = "KEY=VALUE")]
    pub variable: Vec<String>,

    /// How to print the new pipeline.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Runs `trigger`.
pub async fn run(args: TriggerArgs) -> Result<Outcome, CommandError> {
    let given = common::version(args.version.as_deref())?;
    common::check_tag(None, &given)?;
    let version = given.version;
    let api = args.gitlab_url.as_deref().ok_or_else(|| {
        CommandError::usage(anyhow::anyhow!(
            "no GitLab API URL: pass --gitlab-url https://gitlab.example.com/api/v4 (GitLab CI sets CI_API_V4_URL)"
        ))
    })?;
    let api = url::Url::parse(api)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!(
                "--gitlab-url: `{api}` is not an http(s) URL; give the API v4 base, e.g. https://gitlab.example.com/api/v4"
            ))
        })?;
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!(
                "no trigger token: set the environment variable {} (a masked CI/CD variable) to the deploy project's pipeline trigger token, or name another with --token-env",
                args.token_env
            ))
        })?;
    let mut variables = vec![("TAGSHIP_VERSION".to_owned(), version.to_string())];
    if let Ok(upstream) = std::env::var("CI_PIPELINE_URL") {
        variables.push(("TAGSHIP_UPSTREAM_PIPELINE_URL".to_owned(), upstream));
    }
    for pair in &args.variable {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            CommandError::usage(anyhow::anyhow!(
                "--variable `{pair}`: write KEY=VALUE, e.g. --variable DRY_RUN=1"
            ))
        })?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(CommandError::usage(anyhow::anyhow!(
                "--variable `{pair}`: `{key}` is not a variable name (letters, digits, `_`)"
            )));
        }
        variables.push((key.to_owned(), value.to_owned()));
    }
    let request = TriggerRequest {
        api,
        project: args.project.clone(),
        git_ref: args.git_ref.clone(),
        token,
        variables,
    };
    terminal::stderr_line(&format!(
        "triggering a pipeline of `{}` on `{}` to deploy {version}",
        args.project, args.git_ref
    ));
    let pipeline = trigger(&request, Retry::default()).await.map_err(|e| {
        let outcome = match e {
            // A wrong token or project is configuration: nothing was started.
            TriggerError::Unauthorized { .. }
            | TriggerError::NotFound { .. }
            | TriggerError::Rejected { .. } => Outcome::Usage,
            TriggerError::Unavailable { .. } | TriggerError::Unreadable { .. } => Outcome::Failed,
        };
        CommandError::new(outcome, e)
    })?;
    match args.output {
        OutputFormat::Json => terminal::stdout_json(&json!({
            "id": pipeline.id,
            "web_url": pipeline.web_url,
            "project": args.project,
            "ref": args.git_ref,
            "version": version.to_string(),
        })),
        OutputFormat::Text => terminal::stdout_line(&pipeline.web_url),
    }
    Ok(Outcome::Done)
}
