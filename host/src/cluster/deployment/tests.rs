use super::*;

fn deployment(json: Value) -> Deployment {
    serde_json::from_value(json).expect("a deployment")
}

fn live(metadata: &Value, spec_replicas: i32, status: &Value) -> LiveDeployment {
    LiveDeployment::from_deployment(&deployment(json!({
        "metadata": metadata,
        "spec": { "replicas": spec_replicas, "selector": {}, "template": {} },
        "status": status,
    })))
}

#[test]
fn rollout_state_follows_kubectl() {
    let deadline = json!([{ "type": "Progressing", "status": "False",
        "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"r\" has timed out progressing." }]);
    let table = [
        // (what, generation, status, expected: None complete / Some(true) failed / Some(false) progressing)
        (
            "an older generation's status is never complete",
            3,
            json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2 }),
            Some(false),
        ),
        (
            "an older generation's deadline is not this rollout's failure",
            3,
            json!({ "observedGeneration": 2, "conditions": deadline }),
            Some(false),
        ),
        (
            "too few updated replicas",
            2,
            json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2 }),
            Some(false),
        ),
        (
            "old replicas pending termination",
            2,
            json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3 }),
            Some(false),
        ),
        (
            "updated replicas not yet available",
            2,
            json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1 }),
            Some(false),
        ),
        ("no status at all", 1, json!({}), Some(false)),
        (
            "all updated and available",
            2,
            json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2 }),
            None,
        ),
        (
            "a newer observed generation counts",
            2,
            json!({ "observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2 }),
            None,
        ),
        (
            "past the progress deadline",
            2,
            json!({ "observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2, "conditions": deadline }),
            Some(true),
        ),
    ];
    for (what, generation, status, expected) in table {
        let state = live(&json!({ "generation": generation }), 2, &status).rollout_state();
        match expected {
            None => assert_eq!(state, RolloutState::Complete, "{what}"),
            Some(true) => assert_eq!(
                state,
                RolloutState::Failed {
                    reason: PROGRESS_DEADLINE_EXCEEDED.into(),
                    message: "ReplicaSet \"r\" has timed out progressing.".into()
                },
                "{what}"
            ),
            Some(false) => assert!(
                matches!(state, RolloutState::Progressing { .. }),
                "{what}: {state:?}"
            ),
        }
    }
}

#[test]
fn the_watch_s_slim_view_reads_what_the_whole_deployment_does() {
    // A Deployment as the server sends it, with the fields the view skips (labels,
    // managedFields, the selector, the rest of the pod template) and a failed condition.
    let text = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "registry", "namespace": "gitlab", "generation": 5,
            "resourceVersion": "91", "labels": { "app": "registry" },
            "annotations": { "tagship.io/version": "v1.2.0" },
            "managedFields": [{ "manager": "tagship", "operation": "Apply",
                "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                "fieldsV1": { "f:spec": { "f:template": {} } } }] },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "registry" } },
            "template": { "metadata": { "labels": { "app": "registry" } }, "spec": {
                "containers": [{ "name": "registry", "image": "r:v1.2.0",
                    "env": [{ "name": "A", "value": "b" }] }] } } },
        "status": { "observedGeneration": 5, "replicas": 3, "updatedReplicas": 1,
            "readyReplicas": 2, "availableReplicas": 2, "conditions": [{
                "type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded", "message": "too slow" }] },
    })
    .to_string();
    let whole: Deployment = serde_json::from_str(&text).expect("a Deployment");
    let view: DeploymentView = serde_json::from_str(&text).expect("its view");
    let live = LiveDeployment::from_view(&view);
    assert_eq!(live, LiveDeployment::from_deployment(&whole));
    assert_eq!(live.progress_deadline_exceeded.as_deref(), Some("too slow"));
    assert_eq!(live.images["registry"], "r:v1.2.0");
    assert_eq!(view.meta().resource_version.as_deref(), Some("91"));
}

#[test]
fn a_deployment_is_read_into_its_live_fields() {
    let d = deployment(json!({
        "metadata": { "name": "registry", "namespace": "gitlab", "generation": 4,
            "resourceVersion": "77", "annotations": { "a": "b" } },
        "spec": { "replicas": 3, "selector": {}, "template": { "spec": { "containers": [
            { "name": "registry", "image": "r:v1" }, { "name": "sidecar", "image": "s:v9" } ] } } },
        "status": { "observedGeneration": 4, "replicas": 4, "updatedReplicas": 3,
            "readyReplicas": 4, "availableReplicas": 4 },
    }));
    let live = LiveDeployment::from_deployment(&d);
    assert_eq!(
        live,
        LiveDeployment {
            name: "registry".into(),
            namespace: "gitlab".into(),
            generation: 4,
            observed_generation: 4,
            replicas: 3,
            paused: false,
            updated: 3,
            ready: 4,
            available: 4,
            total: 4,
            images: [("registry", "r:v1"), ("sidecar", "s:v9")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            annotations: [("a".to_owned(), "b".to_owned())].into(),
            init_images: BTreeMap::new(),
            resource_version: "77".into(),
            progress_deadline_exceeded: None,
            image_owners: BTreeMap::new(),
        }
    );
}

fn managed() -> ApplyView {
    serde_json::from_value(managed_json()).expect("a Deployment's view")
}

fn managed_json() -> Value {
    json!({
        "metadata": { "name": "registry", "namespace": "gitlab",
            "annotations": { "tagship.io/version": "v1", "tagship.io/old": "x", "team": "y" },
            "managedFields": [
                { "manager": "tagship", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {
                    "f:metadata": { "f:annotations": { "f:tagship.io/version": {}, "f:tagship.io/old": {} } },
                    "f:spec": { "f:template": { "f:spec": { "f:containers": {
                        "k:{\"name\":\"registry\"}": { ".": {}, "f:image": {}, "f:name": {} },
                        "k:{\"name\":\"worker\"}": { ".": {}, "f:image": {}, "f:name": {} } } } } } } },
                { "manager": "kubectl-create", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {
                    "f:metadata": { "f:annotations": { "f:team": {} } },
                    "f:spec": { "f:replicas": {} } } },
            ] },
        "spec": { "replicas": 2, "selector": {}, "template": { "spec": { "containers": [
            { "name": "registry", "image": "r:v1" }, { "name": "worker", "image": "w:v1" },
            { "name": "sidecar", "image": "s:v9" } ] } } },
    })
}

/// [`apply_body`] for [`managed`].
fn apply_to_managed(
    images: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Value>, ClusterError> {
    let view = managed();
    apply_body(
        &LiveDeployment::from_view(&view),
        &view.metadata.owned,
        images,
        annotations,
    )
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn managed_fields_say_which_images_and_annotations_tagship_applied() {
    let view = managed();
    let owned = &view.metadata.owned;
    // The view made from the whole object reads `fieldsV1` the same way.
    let whole = ApplyView::from(&deployment(managed_json()));
    assert_eq!(&whole.metadata.owned, owned);
    assert_eq!(
        owned.containers,
        ["registry", "worker"].map(str::to_owned).into()
    );
    assert_eq!(
        owned.annotations,
        ["tagship.io/old", "tagship.io/version"]
            .map(str::to_owned)
            .into()
    );
}

#[test]
fn the_apply_sends_only_images_and_annotations_and_keeps_what_tagship_owned_before() {
    let body = apply_to_managed(
        &map(&[("registry", "r:v2")]),
        &map(&[("tagship.io/version", "v2")]),
    )
    .expect("known containers")
    .expect("a change");
    assert_eq!(
        body,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "registry", "namespace": "gitlab",
                "annotations": { "tagship.io/version": "v2", "tagship.io/old": "x" } },
            "spec": { "template": { "spec": { "containers": [
                { "name": "registry", "image": "r:v2" }, { "name": "worker", "image": "w:v1" } ] } } },
        })
    );
}

#[test]
fn init_containers_are_read_owned_and_applied_in_their_own_list() {
    let text = json!({
        "metadata": { "name": "registry", "namespace": "gitlab",
            "managedFields": [{ "manager": "tagship", "operation": "Apply", "fieldsType": "FieldsV1",
                "fieldsV1": { "f:spec": { "f:template": { "f:spec": {
                    "f:initContainers": { "k:{\"name\":\"configure\"}": { "f:image": {}, "f:name": {} } },
                    "f:containers": { "k:{\"name\":\"registry\"}": { "f:image": {}, "f:name": {} } } } } } } }] },
        "spec": { "replicas": 2, "selector": {}, "template": { "spec": {
            "initContainers": [{ "name": "configure", "image": "r:v1" }, { "name": "certs", "image": "c:v7" }],
            "containers": [{ "name": "registry", "image": "r:v1" }, { "name": "sidecar", "image": "s:v9" }] } } },
    });
    let view: ApplyView = serde_json::from_value(text.clone()).expect("a view");
    assert_eq!(
        view.metadata.owned.init_containers,
        ["configure"].map(str::to_owned).into()
    );
    assert_eq!(
        ApplyView::from(&deployment(text)).metadata.owned,
        view.metadata.owned,
        "the whole object reads the same"
    );
    let current = LiveDeployment::from_view(&view);
    assert_eq!(current.init_images["certs"], "c:v7");
    assert_eq!(
        current.image_of("configure").map(String::as_str),
        Some("r:v1")
    );
    // Only the registry container is asked for: the init container tagship applied before
    // is re-sent with its live image, in its own list; nothing else is.
    let body = apply_body(
        &current,
        &view.metadata.owned,
        &map(&[("registry", "r:v2")]),
        &BTreeMap::new(),
    )
    .expect("known containers")
    .expect("a change");
    assert_eq!(
        body["spec"],
        json!({ "template": { "spec": {
            "containers": [{ "name": "registry", "image": "r:v2" }],
            "initContainers": [{ "name": "configure", "image": "r:v1" }] } } })
    );
    let body = apply_body(
        &current,
        &view.metadata.owned,
        &map(&[("registry", "r:v2"), ("configure", "r:v2")]),
        &BTreeMap::new(),
    )
    .expect("known containers")
    .expect("a change");
    assert_eq!(
        body["spec"]["template"]["spec"]["initContainers"],
        json!([{ "name": "configure", "image": "r:v2" }])
    );
}

#[test]
fn nothing_is_sent_when_images_and_annotations_already_match() {
    let body = apply_to_managed(
        &map(&[("registry", "r:v1"), ("sidecar", "s:v9")]),
        &map(&[("team", "y")]),
    )
    .expect("known containers");
    assert_eq!(body, None);
}

#[test]
fn a_deployment_already_running_the_images_keeps_its_annotations() {
    // A rollback after an apply refused part-way: this Deployment never changed.
    let body = apply_to_managed(
        &map(&[("registry", "r:v1")]),
        &map(&[
            ("tagship.io/version", "v1"),
            ("tagship.io/previous-version", "v2"),
        ]),
    )
    .expect("known containers");
    assert_eq!(body, None);
}

#[test]
fn an_unknown_container_is_refused_rather_than_added() {
    let err = apply_to_managed(&map(&[("registyr", "r:v2")]), &BTreeMap::new())
        .expect_err("unknown container");
    assert_eq!(
        err.to_string(),
        "deployment `registry` in namespace `gitlab` has no container `registyr`"
    );
}
