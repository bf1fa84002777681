//! The fault-injecting proxy itself, against the real local kube-apiserver: each fault reaches a
//! kube-rs client as the module docs of `tagship_tests::fault_proxy` say, and is counted.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt as _};
use tagship_tests::client_from_kubeconfig;
use tagship_tests::fault_proxy::{Fault, FaultProxy, Match, Rule};
use tagship_tests::harness::Environment;

struct Through {
    proxy: FaultProxy,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn through_proxy(env: &Environment) -> anyhow::Result<Through> {
    let context = &env.contexts[0];
    let proxy = FaultProxy::start(&env.kubeconfig, context)?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    proxy.kubeconfig_for(&env.kubeconfig, context, &kubeconfig)?;
    let client = client_from_kubeconfig(&kubeconfig, Some(context)).await?;
    Ok(Through {
        proxy,
        client,
        _dir: dir,
    })
}

fn config_map(name: &str) -> anyhow::Result<ConfigMap> {
    Ok(serde_json::from_value(
        serde_json::json!({ "metadata": { "name": name }, "data": { "k": "v" } }),
    )?)
}

fn code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test]
async fn status_faults_are_answered_by_the_proxy_a_bounded_number_of_times() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("fp", "").await?;
    let t = through_proxy(&env).await?;
    // 500 (not 503): kube-rs's own retry layer would hide a 503 from this client.
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns.name);
    let reads = Match::new("GET", &["/configmaps/absent"]);
    let rule = t
        .proxy
        .inject(Rule::new(reads.clone(), Fault::status(500), 2).after(1));
    let throttle = t.proxy.inject(Rule::new(
        Match::new("GET", &["/configmaps/slow-down"]),
        Fault::throttle(3),
        1,
    ));

    // The first read passes, the next two get 503, then reads pass again.
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(match api.get_opt("absent").await {
            Ok(found) => Some(if found.is_some() { 200 } else { 404 }),
            Err(err) => code(&err),
        });
    }
    assert_eq!(
        codes,
        [Some(404), Some(500), Some(500), Some(404), Some(404)]
    );
    assert_eq!(t.proxy.injected(rule), 2);
    assert_eq!(t.proxy.matched(rule), 5);
    assert_eq!(t.proxy.seen_matching(&reads).len(), 5);

    // 429 carries Retry-After (read raw: kube-rs does not expose response headers).
    let raw = reqwest::get(format!(
        "{}/api/v1/namespaces/{}/configmaps/slow-down",
        t.proxy.url(),
        ns.name
    ))
    .await?;
    assert_eq!(raw.status().as_u16(), 429);
    assert_eq!(
        raw.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
    assert_eq!(t.proxy.injected(throttle), 1);
    let kinds = t.proxy.injected_by_kind();
    assert_eq!(kinds.get("500"), Some(&2));
    assert_eq!(kinds.get("429"), Some(&1));
    Ok(())
}

#[tokio::test]
async fn a_dropped_request_never_lands_but_a_lost_response_does() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("fp", "").await?;
    let t = through_proxy(&env).await?;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns.name);
    let direct: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns.name);
    let creates = Match::new("POST", &["/configmaps"]);
    let dropped = t.proxy.inject(Rule::new(creates.clone(), Fault::Drop, 1));
    let lost = t
        .proxy
        .inject(Rule::new(creates, Fault::LoseResponse, 1).after(1));

    let first = api
        .create(&PostParams::default(), &config_map("dropped")?)
        .await;
    assert!(
        first.is_err(),
        "a dropped connection is an error: {first:?}"
    );
    assert!(
        code(first.as_ref().expect_err("error")).is_none(),
        "{first:?}"
    );
    assert!(
        direct.get_opt("dropped").await?.is_none(),
        "never reached the apiserver"
    );

    let second = api
        .create(&PostParams::default(), &config_map("lost")?)
        .await;
    assert!(
        second.is_err(),
        "the client never got the answer: {second:?}"
    );
    assert!(
        direct.get_opt("lost").await?.is_some(),
        "but the write landed"
    );
    assert_eq!((t.proxy.injected(dropped), t.proxy.injected(lost)), (1, 1));
    Ok(())
}

#[tokio::test]
async fn a_stall_delays_the_answer_and_a_cut_watch_ends_early() -> anyhow::Result<()> {
    let env = Environment::connect().await?;
    let ns = env.namespace("fp", "").await?;
    let t = through_proxy(&env).await?;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns.name);
    let stalled = t.proxy.inject(Rule::new(
        Match::new("GET", &["/configmaps/stalled"]),
        Fault::Stall(Duration::from_millis(1500)),
        1,
    ));
    let started = Instant::now();
    assert!(api.get_opt("stalled").await?.is_none());
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(t.proxy.injected(stalled), 1);

    // Three objects exist; a watch from resourceVersion 0 replays them as ADDED events, and the
    // proxy cuts the stream after the first bytes.
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &config_map(name)?)
            .await?;
    }
    let watches = Match::new("GET", &["/configmaps"]).watching();
    let cut = t.proxy.inject(Rule::new(
        watches.clone(),
        Fault::CutStream { after_bytes: 1 },
        1,
    ));
    let started = Instant::now();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), "0")
        .await?
        .boxed();
    // kube-rs reads a chunked body that stops short as the end of the watch (an unexpected EOF
    // is not an error to it), so a cut watch looks like one the server closed: it ends long
    // before its 10 s timeout.
    while let Some(event) = stream.next().await {
        if let Ok(WatchEvent::Added(cm)) = event {
            assert!(!cm.name_any().is_empty());
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(t.proxy.injected(cut), 1);

    // The next watch is not cut: everything arrives.
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), "0")
        .await?
        .boxed();
    let mut added = 0;
    while let Some(Ok(event)) = stream.next().await {
        if matches!(event, WatchEvent::Added(_)) {
            added += 1;
        }
    }
    assert_eq!(added, 3);
    assert_eq!(t.proxy.seen_matching(&watches).len(), 2);
    Ok(())
}
