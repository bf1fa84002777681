//! Hostile plugins beyond the basic sandbox suite (`sandbox.rs`): allocation churn just under
//! the limit, a slow-drip server, a huge response, a redirect loop, a granted *name* that
//! resolves to loopback, the cloud metadata address, a secret sent in a URL, and 100 plugins at
//! once. Real guests in the real sandbox, real HTTP on loopback.

#[path = "support/guests.rs"]
mod guests;
#[path = "support/http_server.rs"]
mod http_server;

use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use guests::{ctx, load};
use http_server::{Reply, TestServer};
use tagship::plugins::{Grants, Limits, Plugin, PluginError, PluginHost};
use tagship::verdict::HealthStatus;

fn host() -> PluginHost {
    guests::host("hostile-cache")
}

fn limits() -> Limits {
    Limits {
        wall: Duration::from_secs(3),
        memory_bytes: 16 << 20,
        ..Limits::default()
    }
}

/// The process's resident set in KiB; panics when it cannot be read (a 0 would make every RSS
/// bound hold without measuring anything).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/self/status:\n{status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_churn_just_under_the_limit_is_not_a_breach() {
    let host = host();
    // 12 MiB blocks under a 16 MiB limit, 40 times: 480 MiB allocated and freed in all.
    let plugin = load(
        &host,
        "tp-alloc-churn",
        &[("mib", "12"), ("rounds", "40")],
        Grants::none(),
        limits(),
    );
    let report = plugin.check_health(&ctx()).await.expect("no breach");
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(report.value, Some(40.0));
    // One more MiB per block than fits is a breach, named as such.
    let over = load(
        &host,
        "tp-alloc-churn",
        &[("mib", "17"), ("rounds", "1")],
        Grants::none(),
        limits(),
    );
    let err = over.check_health(&ctx()).await.unwrap_err();
    assert!(matches!(err, PluginError::MemoryLimit { .. }), "{err}");
}

/// A server that answers with headers promising a big body, then drips one byte every 100 ms.
async fn slow_drip_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                    .await;
                loop {
                    if socket.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    (authority, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_server_ends_in_a_timeout_within_the_wall_limit() {
    let (authority, server) = slow_drip_server().await;
    let host = host();
    let plugin = load(
        &host,
        "tp-http-ungranted",
        &[("url", &format!("http://{authority}/v2/"))],
        Grants::none()
            .with_hosts(std::slice::from_ref(&authority))
            .unwrap(),
        limits(),
    );
    let started = Instant::now();
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        err.to_string().contains("timeout") || matches!(err, PluginError::WallTimeout { .. }),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(8),
        "took {took:?} with a 3 s wall limit"
    );
    server.abort();
}

/// A server that streams a 64 MiB body in 64 KiB chunks, counting the bytes the client took.
async fn huge_body_server() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n")
                    .await;
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..1024 {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (authority, sent, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_response_is_cut_at_the_cap_and_not_read_to_its_end() {
    let (authority, sent, server) = huge_body_server().await;
    let host = host();
    let plugin = load(
        &host,
        "tp-http-ungranted",
        &[("url", &format!("http://{authority}/"))],
        Grants::none()
            .with_hosts(std::slice::from_ref(&authority))
            .unwrap(),
        limits(),
    );
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    // The runner stopped reading at the cap and dropped the connection: the server could not
    // push the whole body (socket buffers hold a few MiB at most).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken = sent.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("a 64 MiB response: the server got {taken} bytes out before the runner hung up");
    assert!(
        taken < 32 << 20,
        "the runner must not read the whole 64 MiB body ({taken} bytes were taken)"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_stops_at_the_redirect_limit() {
    let server = TestServer::start(|_| Reply::redirect("/again")).await;
    let host = host();
    let plugin = load(
        &host,
        "tp-http-ungranted",
        &[("url", &server.url())],
        Grants::none().with_hosts(&[server.authority()]).unwrap(),
        limits(),
    );
    let err = plugin.check_health(&ctx()).await.unwrap_err();
    assert!(err.to_string().contains("redirects"), "{err}");
    let hops = server.seen().len();
    assert!((2..=10).contains(&hops), "a bounded number of hops: {hops}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_name_that_resolves_to_loopback_is_refused_but_a_granted_ip_is_not() {
    let server = TestServer::start(|_| Reply::text(200, "internal")).await;
    let port = server.addr.port();
    let host = host();
    // `localhost` resolves to 127.0.0.1 (and ::1): a name may not reach loopback.
    let by_name = load(
        &host,
        "tp-http-ungranted",
        &[("url", &format!("http://localhost:{port}/"))],
        Grants::none()
            .with_hosts(&[format!("localhost:{port}")])
            .unwrap(),
        limits(),
    );
    let err = by_name.check_health(&ctx()).await.unwrap_err();
    assert!(
        err.to_string().contains("resolves only to")
            && err.to_string().contains("grant the IP address itself"),
        "{err}"
    );
    assert!(server.seen().is_empty(), "no request reached the server");
    // The address granted explicitly stays reachable.
    let by_ip = load(
        &host,
        "tp-http-ungranted",
        &[("url", &server.url())],
        Grants::none().with_hosts(&[server.authority()]).unwrap(),
        limits(),
    );
    let report = by_ip.check_health(&ctx()).await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_metadata_address_is_never_reached_even_when_granted() {
    let host = host();
    for (grant, url) in [
        (
            "169.254.169.254",
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        ),
        (
            "[fd00:ec2::254]",
            "http://[fd00:ec2::254]/latest/meta-data/",
        ),
    ] {
        let plugin = load(
            &host,
            "tp-http-ungranted",
            &[("url", url)],
            Grants::none().with_hosts(&[grant]).unwrap(),
            limits(),
        );
        let started = Instant::now();
        let err = plugin.check_health(&ctx()).await.unwrap_err();
        assert!(err.to_string().contains("metadata"), "{url}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused before any connection attempt"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_sent_in_a_url_is_redacted_from_the_error_and_the_reason() {
    let secret = "s3cr3t-token-for-the-url-9f8e7d";
    let host = host();
    // A port nobody listens on: the request fails, and the error names the URL.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let plugin = load(
        &host,
        "tp-secret-in-url",
        &[
            ("url", &format!("http://{closed}/hook")),
            ("secret_name", "HOOK_TOKEN"),
        ],
        Grants::none()
            .with_hosts(std::slice::from_ref(&closed))
            .unwrap()
            .with_secret("HOOK_TOKEN", Some(secret.into())),
        limits(),
    );
    let err = plugin.check_health(&ctx()).await.unwrap_err().to_string();
    assert!(
        !err.contains(secret),
        "the secret leaked into the error: {err}"
    );
    assert!(
        err.contains(&format!("GET http://{closed}:")) && !err.contains("/hook"),
        "an error about a request names its origin, not its path: {err}"
    );

    // Delivered to a granted host (which cannot be prevented), the reason is still redacted.
    let server = TestServer::start(|_| Reply::text(200, "ok")).await;
    let plugin = load(
        &host,
        "tp-secret-in-url",
        &[
            ("url", &format!("{}/hook", server.url())),
            ("secret_name", "HOOK_TOKEN"),
        ],
        Grants::none()
            .with_hosts(&[server.authority()])
            .unwrap()
            .with_secret("HOOK_TOKEN", Some(secret.into())),
        limits(),
    );
    let report = plugin.check_health(&ctx()).await.unwrap();
    assert!(!report.reason.contains(secret), "{}", report.reason);
    assert!(
        server.seen()[0].path.contains(secret),
        "what a granted host receives is the plugin's business: documented, not prevented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_plugins_loaded_and_called_at_once_all_answer_right() {
    let host = host();
    let before = rss_kib();
    let plugins: Vec<Plugin> = (0..100)
        .map(|i| {
            load(
                &host,
                "tp-good-health",
                &[("greeting", &format!("plugin {i}"))],
                Grants::none(),
                Limits::default(),
            )
        })
        .collect();
    let loaded = rss_kib();
    let started = Instant::now();
    let ctx = ctx();
    let reports = join_all(plugins.iter().map(|p| p.check_health(&ctx))).await;
    let took = started.elapsed();
    let after = rss_kib();
    for (i, report) in reports.into_iter().enumerate() {
        let report = report.unwrap_or_else(|e| panic!("plugin {i}: {e}"));
        assert_eq!(report.status, HealthStatus::Healthy);
        assert!(
            report.reason.contains(&format!("plugin {i}")),
            "{}",
            report.reason
        );
    }
    eprintln!(
        "100 plugins: RSS {before} KiB -> {loaded} KiB loaded -> {after} KiB after 100 concurrent calls in {took:?}"
    );
    assert!(
        after.saturating_sub(before) < 256 << 10,
        "100 plugins must fit in 256 MiB more RSS: grew {} KiB",
        after.saturating_sub(before)
    );
}
