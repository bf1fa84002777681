//! End-to-end: the simulator's image registry API, driven as a Docker client drives
//! registry.gitlab.com — challenge, token from the realm, then the manifest's digest — and its
//! refusals: an unknown tag, wrong Basic credentials, a token for another repository.

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::Value;
use tagship_tests::conventions::manifest_digest;
use tagship_tests::harness::Environment;

const NAME: &str = "gitlab/registry";

/// The `realm`, `service` and `scope` of a Bearer challenge.
fn challenge_parts(challenge: &str) -> (String, String, Option<String>) {
    let mut realm = String::new();
    let mut service = String::new();
    let mut scope = None;
    let params = challenge.strip_prefix("Bearer ").unwrap_or_default();
    for part in params.split("\",") {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let value = value.trim_matches('"').to_owned();
        match key {
            "realm" => realm = value,
            "service" => service = value,
            "scope" => scope = Some(value),
            _ => {}
        }
    }
    (realm, service, scope)
}

async fn token(
    http: &reqwest::Client,
    realm: &str,
    scope: &str,
    basic: Option<(&str, &str)>,
) -> anyhow::Result<reqwest::Response> {
    let mut request = http
        .get(realm)
        .query(&[("service", "container_registry"), ("scope", scope)]);
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    Ok(request.send().await?)
}

async fn bearer_for(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<String> {
    let realm = format!("{base}/jwt/auth");
    let body: Value = token(http, &realm, &format!("repository:{name}:pull"), None)
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["token"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_client_follows_the_challenge_to_a_token_and_reads_the_manifests_digest()
-> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let http = reqwest::Client::new();
    let manifest = format!("{}/v2/{NAME}/manifests/v3.1.0-gitlab", env.simulator_url);

    // Without a token: 401 and a challenge naming the simulator's token endpoint and the scope
    let refused = http.head(&manifest).send().await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()[WWW_AUTHENTICATE].to_str()?.to_owned();
    let (realm, service, scope) = challenge_parts(&challenge);
    assert_eq!(realm, format!("{}/jwt/auth", env.simulator_url));
    assert_eq!(service, "container_registry");
    let scope = scope.expect("scope");
    assert_eq!(scope, format!("repository:{NAME}:pull"));
    let body: Value = http.get(&manifest).send().await?.json().await?;
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    // The realm gives a token anonymously
    let answer: Value = token(&http, &realm, &scope, None)
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bearer = answer["token"].as_str().expect("token").to_owned();
    assert_eq!(answer["access_token"], answer["token"]);
    assert_eq!(answer["expires_in"], 300);

    // With it, HEAD gives the digest manifest_digest computes
    let head = http.head(&manifest).bearer_auth(&bearer).send().await?;
    assert_eq!(head.status(), StatusCode::OK);
    let digest = head.headers()["docker-content-digest"].to_str()?;
    assert_eq!(digest, manifest_digest(NAME, "v3.1.0-gitlab"));
    assert_eq!(
        head.headers()["content-type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    // and GET the same digest, with a small manifest
    let get = http.get(&manifest).bearer_auth(&bearer).send().await?;
    assert_eq!(
        get.headers()["docker-content-digest"].to_str()?,
        manifest_digest(NAME, "v3.1.0-gitlab")
    );
    let body: Value = get.json().await?;
    assert_eq!(body["schemaVersion"], 2);
    Ok(())
}

#[tokio::test]
async fn the_api_root_challenges_without_a_token_and_answers_with_one() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let http = reqwest::Client::new();
    let root = format!("{}/v2/", env.simulator_url);
    let refused = http.get(&root).send().await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let (realm, _, scope) = challenge_parts(refused.headers()[WWW_AUTHENTICATE].to_str()?);
    assert_eq!(realm, format!("{}/jwt/auth", env.simulator_url));
    assert_eq!(scope, None);
    let bearer = bearer_for(&http, &env.simulator_url, NAME).await?;
    let answer = http.get(&root).bearer_auth(&bearer).send().await?;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await?, "{}");
    Ok(())
}

#[tokio::test]
async fn a_missing_tag_is_manifest_unknown() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let http = reqwest::Client::new();
    let bearer = bearer_for(&http, &env.simulator_url, NAME).await?;
    let answer = http
        .get(format!(
            "{}/v2/{NAME}/manifests/v9.9.9-missing",
            env.simulator_url
        ))
        .bearer_auth(&bearer)
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let body: Value = answer.json().await?;
    assert_eq!(
        body,
        serde_json::json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
            "detail": {"Tag": "v9.9.9-missing"}}]})
    );
    Ok(())
}

#[tokio::test]
async fn only_tagships_basic_credentials_get_a_token() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let http = reqwest::Client::new();
    let realm = format!("{}/jwt/auth", env.simulator_url);
    let scope = format!("repository:{NAME}:pull");
    let wrong = token(&http, &realm, &scope, Some(("tagship", "wrong"))).await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = token(
        &http,
        &realm,
        &scope,
        Some(("tagship", "registry-password")),
    )
    .await?;
    assert_eq!(right.status(), StatusCode::OK);
    let body: Value = right.json().await?;
    let manifest = format!("{}/v2/{NAME}/manifests/v1", env.simulator_url);
    let answer = http
        .head(&manifest)
        .bearer_auth(body["token"].as_str().unwrap_or_default())
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_token_is_good_only_for_the_scope_it_was_issued_for() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let http = reqwest::Client::new();
    let bearer = bearer_for(&http, &env.simulator_url, "gitlab/a").await?;
    let own = format!("{}/v2/gitlab/a/manifests/v1", env.simulator_url);
    let other = format!("{}/v2/gitlab/b/manifests/v1", env.simulator_url);
    assert_eq!(
        http.head(&own).bearer_auth(&bearer).send().await?.status(),
        StatusCode::OK
    );
    let refused = http.head(&other).bearer_auth(&bearer).send().await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()[WWW_AUTHENTICATE].to_str()?;
    assert!(
        challenge.contains(r#"scope="repository:gitlab/b:pull""#)
            && challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    let forged = http.head(&own).bearer_auth("not-a-token").send().await?;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}
