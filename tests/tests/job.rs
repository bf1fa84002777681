//! End-to-end: Jobs on the local cluster complete or fail as the real job controller decides from
//! the pod phases the kubelet stand-in reports.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::PostParams;
use tagship_tests::harness::Environment;
use tagship_tests::rollout::{JobOutcome, wait_for_job};

fn job(name: &str, image: &str, args: &[&str]) -> anyhow::Result<Job> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": image, "args": args}],
            }},
        },
    }))?)
}

async fn run_job(image: &str, args: &[&str]) -> anyhow::Result<(Environment, String, JobOutcome)> {
    let env = Environment::connect().await?;
    let ns = env.namespace("job", "").await?;
    let api: Api<Job> = Api::namespaced(env.client.clone(), &ns.name);
    api.create(&PostParams::default(), &job("migrate", image, args)?)
        .await?;
    let outcome = wait_for_job(&api, "migrate", Duration::from_mins(1)).await?;
    let name = ns.name.clone();
    // Keep the namespace until kubectl has looked too.
    let kubectl_view = env.kubectl(&[
        "get",
        "job",
        "migrate",
        "-n",
        &name,
        "-o",
        "jsonpath={.status.conditions[*].type}",
    ])?;
    drop(ns);
    Ok((
        env,
        String::from_utf8_lossy(&kubectl_view.stdout).into_owned(),
        outcome,
    ))
}

#[tokio::test]
async fn a_job_with_a_good_image_completes() -> anyhow::Result<()> {
    let (_env, kubectl_conditions, outcome) =
        run_job("registry.local/migrate:v1.0.0-gitlab", &["db:migrate"]).await?;
    assert_eq!(outcome, JobOutcome::Complete);
    assert_eq!(kubectl_conditions, "Complete");
    Ok(())
}

#[tokio::test]
async fn a_job_with_a_failing_image_and_no_retries_ends_failed() -> anyhow::Result<()> {
    let (_env, kubectl_conditions, outcome) =
        run_job("registry.local/migrate:v1.0.0-fail", &["db:migrate"]).await?;
    assert_eq!(outcome, JobOutcome::Failed);
    assert_eq!(kubectl_conditions, "Failed");
    Ok(())
}

#[tokio::test]
async fn a_job_runs_as_long_as_its_runs_for_word_says() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (_env, kubectl_conditions, outcome) = run_job(
        "registry.local/migrate:v1.0.0-gitlab",
        &["db:migrate", "runs-for-ms=2000"],
    )
    .await?;
    assert_eq!(outcome, JobOutcome::Complete);
    assert_eq!(kubectl_conditions, "Complete");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
