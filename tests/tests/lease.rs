//! End-to-end: a `coordination.k8s.io/v1` Lease used as a deploy lock with compare-and-swap on
//! `resourceVersion` — of two racing contenders exactly one wins, and an expired Lease is taken over.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tagship_tests::harness::Environment;

const DURATION_SECONDS: i32 = 15;

fn lease(name: &str, holder: &str, renewed: Timestamp) -> anyhow::Result<Lease> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": DURATION_SECONDS,
            "acquireTime": MicroTime(renewed),
            "renewTime": MicroTime(renewed),
        },
    }))?)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Takes the Lease for `me` if it is free or expired: create when missing, else replace with the
/// resourceVersion just read. `Ok(false)` when someone else holds it or won the race.
async fn try_acquire(api: &Api<Lease>, name: &str, me: &str) -> anyhow::Result<bool> {
    let now = Timestamp::now();
    let Some(current) = api.get_opt(name).await? else {
        return match api
            .create(&PostParams::default(), &lease(name, me, now)?)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let expires = spec
        .renew_time
        .map(|t| t.0 + SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).into()));
    let held_by_other = spec
        .holder_identity
        .as_deref()
        .is_some_and(|h| h != me && !h.is_empty());
    if held_by_other && expires.is_some_and(|e| e > now) {
        return Ok(false);
    }
    let mut next = lease(name, me, now)?;
    next.metadata.resource_version = current.metadata.resource_version.clone();
    match api.replace(name, &PostParams::default(), &next).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn of_two_contenders_racing_for_a_lease_exactly_one_wins_every_time() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("lease", "").await?;
    let api: Api<Lease> = Api::namespaced(env.client.clone(), &ns.name);
    for round in 0..50 {
        // Given a free Lease, or none at all on odd rounds
        let name = format!("deploy-lock-{round}");
        if round % 2 == 0 {
            api.create(&PostParams::default(), &lease(&name, "", Timestamp::now())?)
                .await?;
        }
        // When two contenders try to take it at the same moment
        let (a, b) = tokio::join!(
            try_acquire(&api, &name, "runner-a"),
            try_acquire(&api, &name, "runner-b")
        );
        let (a, b) = (a?, b?);
        // Then exactly one wins, and the Lease names the winner
        assert!(a ^ b, "round {round}: a won {a}, b won {b}");
        let holder = api.get(&name).await?.spec.and_then(|s| s.holder_identity);
        assert_eq!(
            holder.as_deref(),
            Some(if a { "runner-a" } else { "runner-b" })
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_a_fresh_one_is_not() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("lease", "").await?;
    let api: Api<Lease> = Api::namespaced(env.client.clone(), &ns.name);
    let long_ago = Timestamp::now() - SignedDuration::from_mins(1);
    api.create(
        &PostParams::default(),
        &lease("expired", "crashed-runner", long_ago)?,
    )
    .await?;
    api.create(
        &PostParams::default(),
        &lease("fresh", "live-runner", Timestamp::now())?,
    )
    .await?;

    assert!(try_acquire(&api, "expired", "runner-b").await?);
    assert!(!try_acquire(&api, "fresh", "runner-b").await?);
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity);
    assert_eq!(
        holder(api.get("expired").await?).as_deref(),
        Some("runner-b")
    );
    assert_eq!(
        holder(api.get("fresh").await?).as_deref(),
        Some("live-runner")
    );
    Ok(())
}
