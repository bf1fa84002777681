use tokio::time::Instant;

use super::*;

#[test]
fn an_api_server_s_answer_is_told_by_code_reason_and_message_without_its_structure() {
    use kube::core::Status;
    let told = |status: Status| KubeError(kube::Error::Api(Box::new(status))).to_string();
    assert_eq!(
        told(Status::failure("Unauthorized", "Unauthorized").with_code(401)),
        "the API server answered 401 Unauthorized"
    );
    assert_eq!(
        told(
            Status::failure(
                "deployments.apps \"registry\" is forbidden: User \"ci\" cannot patch",
                "Forbidden"
            )
            .with_code(403)
        ),
        "the API server answered 403 Forbidden: deployments.apps \"registry\" is forbidden: \
         User \"ci\" cannot patch"
    );
    let err = KubeError(kube::Error::Api(Box::new(Status::failure("m", "r"))));
    assert!(std::error::Error::source(&err).is_none());
}

#[tokio::test]
async fn a_refused_connection_is_told_by_its_cause_without_the_client_s_wrappers() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
    let client = Client::try_from(config).expect("a client");
    let err = client
        .apiserver_version()
        .await
        .expect_err("nobody listens");
    assert!(is_refused(&err));
    let told = KubeError(err).to_string();
    assert!(
        told.starts_with("tcp connect error: Connection refused"),
        "{told}"
    );
    assert!(
        !told.contains("ServiceError") && !told.contains("client error"),
        "{told}"
    );
}

#[test]
fn an_outage_is_told_once_however_many_activities_ride_it_out() {
    let server = Server::new("local-1".into());
    let refused = || kube::Error::Service("connection refused".into());
    let began = Instant::now();
    let wait = Duration::from_secs(10);
    assert!(
        server.failing(&refused(), began, wait),
        "the first activity tells it"
    );
    assert!(
        !server.failing(&refused(), began, wait),
        "the watch does not again"
    );
    assert!(server.answered().is_some(), "its end is told");
    assert_eq!(server.answered(), None, "and only once");
    assert!(
        server.failing(&refused(), Instant::now(), wait),
        "a new outage is told"
    );
}

#[test]
fn messages_name_the_object_in_backticks() {
    let err = Object::new("deployment", "gitlab-cny", "registry").not_found();
    assert_eq!(
        err.to_string(),
        "deployment `registry` in namespace `gitlab-cny` not found"
    );
    let lost = ClusterError::LockLost {
        lease: "gstg".into(),
        namespace: "gitlab".into(),
        holder: "ci-1".into(),
        by: Some("ci-2".into()),
    };
    assert_eq!(
        lost.to_string(),
        "lock `gstg` in namespace `gitlab` is no longer held by `ci-1` (now held by `ci-2`)"
    );
}
