//! End-to-end: the simulator answers like the registry of each namespace, and Prometheus'
//! `gitlab_deployment_health:service` reads 1 for a good version and turns 0 soon after an `errors`
//! version goes live, in that stage only.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tagship_tests::harness::{Environment, deployment_manifest, eventually, unique_word};
use tagship_tests::rollout::{Rollout, wait_for_rollout};
use tagship_tests::simulator::VERSION_HEADER;

const HEALTH_TIMEOUT: Duration = Duration::from_mins(1);

async fn deploy(env: &Environment, namespace: &str, tag: &str) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), namespace);
    let manifest =
        deployment_manifest("registry", &format!("registry.local/registry:{tag}"), 2, 20);
    api.patch(
        "registry",
        &PatchParams::apply("tagship-tests").force(),
        &Patch::Apply(&manifest),
    )
    .await?;
    assert_eq!(
        wait_for_rollout(&api, "registry", Duration::from_mins(1)).await?,
        Rollout::Complete
    );
    Ok(())
}

async fn health(env: &Environment, namespace: &str) -> anyhow::Result<Option<f64>> {
    let series = env
        .prometheus_query(&format!(
            r#"gitlab_deployment_health:service{{namespace="{namespace}"}}"#
        ))
        .await?;
    Ok(series.first().map(|(_, v)| *v))
}

async fn health_becomes(env: &Environment, namespace: &str, wanted: f64) -> anyhow::Result<()> {
    eventually(
        HEALTH_TIMEOUT,
        &format!("health of `{namespace}` to read {wanted}"),
        || async { Ok((health(env, namespace).await? == Some(wanted)).then_some(())) },
    )
    .await
}

async fn registry_version(env: &Environment, namespace: &str) -> anyhow::Result<String> {
    let response = reqwest::get(format!("{}/ns/{namespace}/v2/", env.simulator_url))
        .await?
        .error_for_status()?;
    let version = response
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(response.text().await?, "{}");
    Ok(version)
}

#[tokio::test]
async fn health_turns_to_zero_only_in_the_stage_where_an_errors_version_goes_live()
-> anyhow::Result<()> {
    // Given the main and canary stages of one environment running a good version
    let env = Environment::connect().await?;
    let word = unique_word();
    let main = env.namespace_named(&format!("health-{word}")).await?;
    let canary = env.namespace_named(&format!("health-{word}-cny")).await?;
    deploy(&env, &main.name, "v3.0.0-gitlab").await?;
    deploy(&env, &canary.name, "v3.0.0-gitlab").await?;
    assert_eq!(registry_version(&env, &canary.name).await?, "v3.0.0");
    health_becomes(&env, &main.name, 1.0).await?;
    health_becomes(&env, &canary.name, 1.0).await?;
    let labels = env
        .prometheus_query(&format!(
            r#"gitlab_deployment_health:service{{namespace="{}"}}"#,
            canary.name
        ))
        .await?;
    let (labels, _) = labels.first().cloned().unwrap_or_default();
    assert_eq!(
        labels.get("env").map(String::as_str),
        Some(main.name.as_str())
    );
    assert_eq!(labels.get("stage").map(String::as_str), Some("cny"));
    assert_eq!(labels.get("type").map(String::as_str), Some("registry"));

    // When a version serving 20% errors goes live in the canary
    deploy(&env, &canary.name, "v3.1.0-errors-gitlab").await?;
    let live = Instant::now();
    assert_eq!(registry_version(&env, &canary.name).await?, "v3.1.0-errors");

    // Then the canary's health reads 0 within the bound, and the main stage's stays 1
    health_becomes(&env, &canary.name, 0.0).await?;
    eprintln!(
        "canary health turned 0 {:?} after the errors version went live",
        live.elapsed()
    );
    assert_eq!(health(&env, &main.name).await?, Some(1.0));
    Ok(())
}

#[tokio::test]
async fn a_namespace_without_a_deployment_has_no_registry() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("empty", "").await?;
    let response = reqwest::get(format!("{}/ns/{}/v2/", env.simulator_url, ns.name)).await?;
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    Ok(())
}
