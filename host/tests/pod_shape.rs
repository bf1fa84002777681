//! `tagship deploy` of the registry as it really runs, as GitLab's Helm chart renders it: a
//! `registry` container reading `config.yml` (written by a `configure` init container of the
//! same image from a `ConfigMap`) and its database password from a Secret, a sidecar from
//! another image, production over two clusters. The real binary against the real local
//! kube-apiserver, with the kubelet stand-in resolving env and volumes as a kubelet does
//! (tests/README.md); `kubectl` is the independent witness.
//!
//! Needs the local environment with two clusters: `tests/cluster/up --clusters 2`, then the
//! variables of its `env` file.

#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/site.rs"]
mod site;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use http_server::{Reply, TestServer};
use site::{
    REGISTRY_NEEDS, Site, StageSpec, command, deploy, env, eventually, image_of, kubectl_ok,
    kubectl_ok_in, prometheus_values, run, tagship,
};

/// `registry database migrate up …` as the registry runs it: it needs its password and config.
fn migrate(extra: &[&str]) -> Vec<String> {
    ["registry", "database", "migrate", "up"]
        .iter()
        .chain(extra)
        .chain(REGISTRY_NEEDS.iter())
        .map(|w| (*w).to_owned())
        .collect()
}

/// The names of the Jobs in `stage`'s namespace (first cluster).
fn jobs(site: &Site, stage: &str) -> Vec<String> {
    kubectl_ok_in(
        site.first_cluster(stage),
        &[
            "get",
            "jobs",
            "-n",
            &site.ns(stage),
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

/// Every image of `stage`'s Deployment in `cluster`: init containers, then containers.
fn images_in(site: &Site, cluster: &str, stage: &str) -> String {
    site.get_in(
        cluster,
        stage,
        "jsonpath={.spec.template.spec.initContainers[*].image} {.spec.template.spec.containers[*].image}",
    )
}

#[test]
fn a_migration_runs_in_the_workload_s_pod_with_its_secret_and_its_config() {
    // Given the registry's pod shape, and pre-deployment migrations that need the database
    // password (a Secret reference) and config.yml (an emptyDir the init container fills from a
    // ConfigMap), as `registry database migrate up` does
    let site = Site::builder("podmig")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create();
    let words = migrate(&["--skip-post-deployment"]);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let config = site.config().pre_migration(&words).write();

    // When the plan is asked for, and a dry run
    let plan = command(&config, &["plan"], &["--version", "v2.0.0"]);
    // Then both show the Job that would run: in the registry's pod, with the target image, its
    // env by source (never the value) and its volumes
    assert_eq!(plan.code, 0, "{}", plan.said);
    for expected in [
        "pre-deployment migrations: Job `registry-pre-migrate-v2-0-0-",
        "in the pod of `gitlab-registry/registry`",
        &format!("image {}", image_of("v2.0.0")),
        "REGISTRY_DATABASE_PASSWORD from secret `registry-db` key `password`",
        "registry-server-config (emptyDir) at /etc/docker/registry",
        &format!("configure ({})", image_of("v2.0.0")),
    ] {
        assert!(plan.stdout.contains(expected), "{expected}\n{}", plan.said);
    }
    assert!(
        !plan.said.contains("s3cret"),
        "a secret's value is never shown"
    );
    let report = site.dir().join("dry-run.json");
    let dry = deploy(
        &config,
        &[
            "--version",
            "v2.0.0",
            "--dry-run",
            "--json-report",
            report.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(dry.code, 0, "{}", dry.said);
    let (old, new) = (image_of("v1.0.0"), image_of("v2.0.0"));
    for expected in [
        "would run before the apply (the server accepts it): Job `registry-pre-migrate-v2-0-0-",
        &format!("local-1 gitlab-registry/configure: {old} → {new}"),
        &format!("local-1 gitlab-registry/registry: {old} → {new}"),
        "annotations: tagship.io/deployed-at=",
        "tagship.io/previous-version=v1.0.0",
    ] {
        assert!(dry.said.contains(expected), "{expected}\n{}", dry.said);
    }
    assert!(
        !dry.said.contains("sidecar:"),
        "the sidecar does not change: {}",
        dry.said
    );
    assert!(jobs(&site, "gstg").is_empty(), "a dry run creates no Job");
    assert_eq!(site.image("gstg"), old, "a dry run changes nothing");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the report was written"))
            .expect("JSON");
    assert_eq!(json["outcome"], "dry-run", "{json}");
    assert!(json.to_string().contains("would apply v2.0.0"), "{json}");

    // When the release is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then the migration ran and succeeded (the stand-in fails a Job pod whose password or
    // config is missing), its Job was cleaned up, and the release serves
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.said.contains("running pre-deployment migrations"),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    assert!(jobs(&site, "gstg").is_empty(), "a finished Job is removed");

    // When a migration runs in a container without them (the sidecar's pod has neither)
    let bare = site
        .config()
        .toml(&format!(
            "[migrations.pre]\ncommand = {}\ncontainer = \"sidecar\"\n",
            site::toml_list(&words)
        ))
        .write_as("bare.toml");
    let ran = deploy(&bare, &["--version", "v2.1.0"]);

    // Then it fails, saying what the pod said, where the Job is and how to read its logs; the
    // Job is kept for that, and nothing was applied
    assert_eq!(ran.code, 1, "{}", ran.said);
    let ns = site.ns("gstg");
    for expected in [
        "pre-deployment migrations failed: Job `registry-pre-migrate-v2-1-0-",
        &format!("in namespace `{ns}` of cluster `local-1` failed"),
        "REGISTRY_DATABASE_PASSWORD",
        // the kubeconfig the configuration names, not kubectl's default
        &format!(
            "kubectl --kubeconfig {} --context local-1 -n {ns} logs job/registry-pre-migrate-v2-1-0-",
            site::env("TAGSHIP_KUBECONFIG")
        ),
        "nothing was applied",
    ] {
        assert!(ran.said.contains(expected), "{expected}\n{}", ran.said);
    }
    assert_eq!(jobs(&site, "gstg").len(), 1, "the failed Job is kept");
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
}

#[test]
fn production_over_two_clusters_moves_the_registry_and_its_init_container_and_never_the_sidecar() {
    // Given gstg in local-1 and production over local-1 and local-2, and a webhook hearing the
    // deploy's events
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(TestServer::start(|_| Reply::text(204, "")));
    let site = Site::builder("podtwo")
        .stages(vec![
            StageSpec::auto("gstg", "gstg"),
            StageSpec::auto("gprd", "gprd").in_clusters(&["local-1", "local-2"]),
        ])
        .create();
    let config = site
        .config()
        .webhook("hook", &format!("{}/hook", receiver.url()))
        .write();

    // When v2.0.0 is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(ran.code, 0, "{}", ran.said);

    // Then in every cluster the init container and the registry run it, the sidecar does not
    let new = image_of("v2.0.0");
    for cluster in ["local-1", "local-2"] {
        assert_eq!(
            images_in(&site, cluster, "gprd"),
            format!("{new} {new} busybox:1.36"),
            "{cluster}"
        );
        assert!(site.rollout_in(cluster, "gprd").0);
    }
    // And the plugins were told where each workload lives and what it runs
    let started: Vec<Value> = receiver
        .seen()
        .iter()
        .map(|seen| serde_json::from_slice(&seen.body).expect("a JSON event"))
        .filter(|e: &Value| e["kind"] == "stage-started" && e["context"]["stage"] == "gprd")
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    let workloads = started[0]["context"]["workloads"]
        .as_array()
        .expect("workloads")
        .clone();
    assert_eq!(
        workloads.len(),
        4,
        "two containers in two clusters: {workloads:?}"
    );
    for w in &workloads {
        assert_eq!(w["namespace"], site.ns("gprd"), "{w}");
        assert_eq!(w["image"], image_of("v1.0.0"), "what ran before: {w}");
        assert!(
            w["cluster"] == "local-1" || w["cluster"] == "local-2",
            "{w}"
        );
    }
}

#[test]
fn a_stage_with_its_own_image_repository_deploys_the_mirror_s_image() {
    // Given production pulling from a mirror
    let site = Site::builder("podmir")
        .stages(vec![
            StageSpec::auto("gstg", "gstg"),
            StageSpec::auto("gprd", "gprd"),
        ])
        .create();
    let config = site
        .config()
        .stage("gprd", "image = \"mirror.example.com/registry\"")
        .write();

    // When v2.0.0 is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then gstg runs the component's repository, production the mirror's, both as v2.0.0
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    assert_eq!(
        images_in(&site, "local-1", "gprd"),
        "mirror.example.com/registry:v2.0.0-gitlab mirror.example.com/registry:v2.0.0-gitlab busybox:1.36"
    );
    let again = deploy(&config, &["--version", "v2.0.0"]);
    assert!(
        again.said.contains("already serving v2.0.0"),
        "{}",
        again.said
    );
}

#[test]
fn a_release_pinned_by_digest_deploys_the_digest_the_registry_gives() {
    // Given a component pinned by digest, the registry's HTTP API being the simulator's
    let site = Site::builder("podpin")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create();
    let config = site
        .config()
        .component(&format!(
            "pin = \"digest\"\nregistry_url = \"{}\"",
            env("TAGSHIP_SIMULATOR_URL")
        ))
        .write();

    // When v2.0.0 is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then the Deployment runs `repo:tag@digest` with the registry's digest of the tag (the
    // stand-in pulls only a digest the registry has), and tagship still reads it as v2.0.0
    assert_eq!(ran.code, 0, "{}", ran.said);
    let digest = tagship_tests::conventions::manifest_digest("registry", "v2.0.0-gitlab");
    let pinned = format!("{}@{digest}", image_of("v2.0.0"));
    assert_eq!(site.image("gstg"), pinned);
    assert!(ran.said.contains(&format!("is {digest}")), "{}", ran.said);
    let again = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(again.code, 0, "{}", again.said);
    assert!(
        again.said.contains("already serving v2.0.0"),
        "{}",
        again.said
    );

    // When a release whose tag the registry does not have is deployed
    let ran = deploy(&config, &["--version", "v2.1.0-missing"]);
    // Then nothing is applied, and the error says which tag is missing where
    assert_ne!(ran.code, 0, "{}", ran.said);
    assert!(
        ran.said
            .contains("has no tag `v2.1.0-missing-gitlab` in repository `registry`"),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg"), pinned);
}

#[test]
fn checks_run_per_cluster_and_one_unhealthy_cluster_fails_the_stage_and_rolls_back_both() {
    // Given production over two clusters whose local-2 serves errors whatever runs there (its
    // traffic comes from a container listed first, whose tag says `errors`), and a bake check
    // per cluster: `{{cluster}}` and `{{namespace}}` in its query
    let site = Site::builder("podchk")
        .stages(vec![
            StageSpec::auto("gprd", "gprd").in_clusters(&["local-1", "local-2"]),
        ])
        .deployment_in(|context, d| {
            if context == "local-2" {
                let containers = d["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .expect("containers");
                containers.insert(
                    0,
                    json!({"name": "traffic", "image": "busybox:1.36-errors"}),
                );
            }
        })
        .create();
    let ns = site.ns("gprd");
    let query = |cluster: &str| {
        format!("min(gitlab_deployment_health:service{{cluster=\"{cluster}\",namespace=\"{ns}\"}})")
    };
    assert!(
        eventually(Duration::from_mins(1), || {
            prometheus_values(&query("local-1")) == [1.0]
                && prometheus_values(&query("local-2")) == [0.0]
        }),
        "Prometheus never saw local-1 healthy and local-2 unhealthy"
    );
    let config = site
        .config()
        .without_health()
        .toml(&format!(
            "[plugins.health]\nsource = \"builtin:prometheus-health\"\nallow_hosts = [\"{grant}\"]\nconfig = {{ url = \"{url}\", pass = \"== 1\", query = 'min(gitlab_deployment_health:service{{cluster=\"{{{{cluster}}}}\",namespace=\"{{{{namespace}}}}\"}})' }}\n",
            url = env("TAGSHIP_PROMETHEUS_URL"),
            grant = env("TAGSHIP_PROMETHEUS_URL").trim_start_matches("http://"),
        ))
        .bake("gprd", "checks = [\"health\"]\nduration = \"10s\"\ninterval = \"5s\"")
        .write();

    // When v2.0.0 is deployed
    let ran = deploy(&config, &["--version", "v2.0.0"]);

    // Then each cluster was checked on its own: local-1 passed, local-2 failed the stage, and
    // the rollback returned both clusters to v1.0.0
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(ran.said.contains("health pass in local-1"), "{}", ran.said);
    assert!(ran.said.contains("health FAIL in local-2"), "{}", ran.said);
    assert!(ran.said.contains("`health` in `local-2`"), "{}", ran.said);
    for cluster in ["local-1", "local-2"] {
        assert_eq!(
            site.image_in(cluster, "gprd"),
            image_of("v1.0.0"),
            "{cluster}\n{}",
            ran.said
        );
    }
}

#[test]
fn a_crash_looping_release_is_rolled_back_in_seconds_despite_the_default_progress_deadline() {
    // Given Deployments with Kubernetes' default progress deadline (600 s)
    let site = Site::builder("podcrash")
        .stages(vec![
            StageSpec::auto("gstg", "gstg"),
            StageSpec::auto("gprd", "gprd").in_clusters(&["local-1", "local-2"]),
        ])
        .deployment(|d| {
            d["spec"]
                .as_object_mut()
                .expect("spec")
                .remove("progressDeadlineSeconds");
        })
        .create();
    let config = site.config().write();
    let deadline = site.get_in(
        "local-1",
        "gstg",
        "jsonpath={.spec.progressDeadlineSeconds}",
    );
    assert_eq!(deadline, "600", "the API server's default");

    // When a release that crash-loops is deployed
    let ran = deploy(&config, &["--version", "v2.0.0-crashloop"]);

    // Then it is rolled back within seconds of its first crash-looping pod (the stand-in
    // reports CrashLoopBackOff 300 ms after a pod starts), naming the pod, the container and
    // its state; v1.0.0 serves again and production was never touched
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.took < Duration::from_secs(30),
        "{:?}\n{}",
        ran.took,
        ran.said
    );
    for expected in [
        "deployment `gitlab-registry` in cluster `local-1`: pod `gitlab-registry-",
        "container `configure` is in CrashLoopBackOff",
        "rolled back",
    ] {
        assert!(ran.said.contains(expected), "{expected}\n{}", ran.said);
    }
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
    assert!(site.rollout_in("local-1", "gstg").0);
    assert_eq!(site.image_in("local-2", "gprd"), image_of("v1.0.0"));

    // When restarts are allowed generously, Then the same release is not failed by its pods but
    // by the rollout's own limit
    let patient = site
        .config()
        .rollout_timeout("8s")
        .stage("gstg", "restarts_allowed = 1000")
        .write_as("patient.toml");
    let ran = deploy(
        &patient,
        &["--version", "v2.0.0-crashloop", "--until", "gstg"],
    );
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains("not rolled out within 8s"),
        "{}",
        ran.said
    );
    assert!(!ran.said.contains("CrashLoopBackOff"), "{}", ran.said);
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
}

#[test]
fn a_release_that_cannot_start_is_rolled_back_naming_why() {
    // Given a stage, then the registry's database Secret losing its key
    let site = Site::builder("podcfg")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create();
    let config = site.config().write();
    let ns = site.ns("gstg");

    // When a release whose image cannot be pulled is deployed
    let ran = deploy(&config, &["--version", "v2.0.0-pullfail"]);
    // Then it is rolled back, naming the pull failure
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains("ErrImagePull") || ran.said.contains("ImagePullBackOff"),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));

    // When the Secret loses the password and a good release is deployed
    kubectl_ok(&[
        "patch",
        "secret",
        site::DB_SECRET,
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/data/password"}]"#,
    ]);
    let ran = deploy(&config, &["--version", "v2.1.0"]);
    // Then its pods cannot be configured, which names the Secret and the key, and it is rolled
    // back (the old pods keep serving: they were configured when they started)
    assert_eq!(ran.code, 1, "{}", ran.said);
    assert!(
        ran.said.contains(&format!(
            "CreateContainerConfigError: couldn't find key password in Secret {ns}/{}",
            site::DB_SECRET
        )),
        "{}",
        ran.said
    );
    assert_eq!(site.image("gstg"), image_of("v1.0.0"));
}

/// The environment's CA (PEM) and token, as a pod's service account would have them.
fn service_account_files(dir: &std::path::Path, namespace: &str) -> (String, String) {
    let view = |path: &str| {
        kubectl_ok(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    let ca =
        Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().expect("stdin").write_all(
                    view("{.clusters[0].cluster.certificate-authority-data}").as_bytes(),
                )?;
                child.wait_with_output()
            })
            .expect("base64 -d");
    std::fs::create_dir_all(dir).expect("service account dir");
    std::fs::write(dir.join("ca.crt"), ca.stdout).expect("ca.crt");
    std::fs::write(dir.join("token"), view("{.users[0].user.token}")).expect("token");
    std::fs::write(dir.join("namespace"), namespace).expect("namespace");
    let server = view("{.clusters[0].cluster.server}");
    let (host, port) = server
        .trim_start_matches("https://")
        .rsplit_once(':')
        .expect("host:port");
    (host.to_owned(), port.to_owned())
}

#[test]
fn without_a_kubeconfig_tagship_uses_the_pod_s_service_account() {
    // Given a configuration without `kubeconfig` or contexts, and tagship in a "pod": the
    // service-account files mounted where a pod has them (in a mount namespace of its own) and
    // KUBERNETES_SERVICE_HOST/PORT set, with no $KUBECONFIG and no ~/.kube/config
    let site = Site::builder("podsa")
        .stages(vec![StageSpec::auto("gstg", "gstg")])
        .create();
    let config = site.config().in_cluster().write();
    let account = site.dir().join("serviceaccount");
    let (host, port) = service_account_files(&account, &site.ns("gstg"));
    let home = site.dir().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let binary = env!("CARGO_BIN_EXE_tagship");
    let in_a_pod = |args: &[&str]| {
        let mut cmd = tagship(&[]);
        let program = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && cp {}/* /run/secrets/kubernetes.io/serviceaccount/ && exec \"$@\"",
            account.display()
        );
        let mut full = vec![
            "--mount".to_owned(),
            "--propagation".to_owned(),
            "private".to_owned(),
            "sh".to_owned(),
            "-c".to_owned(),
            program,
            "sh".to_owned(),
            binary.to_owned(),
        ];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        let mut unshare = Command::new("unshare");
        unshare
            .args(&full)
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .env_remove("KUBECONFIG")
            .env("HOME", &home)
            .env("KUBERNETES_SERVICE_HOST", &host)
            .env("KUBERNETES_SERVICE_PORT", &port)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd = unshare;
        run(&mut cmd)
    };

    // When it deploys
    let config_arg = config.to_str().expect("utf-8");
    let ran = in_a_pod(&["deploy", "--config", config_arg, "--version", "v2.0.0"]);

    // Then it reached the cluster with the service account, and the release serves
    assert_eq!(ran.code, 0, "{}", ran.said);
    assert_eq!(site.image("gstg"), image_of("v2.0.0"));
    let status = in_a_pod(&["status", "--config", config_arg, "--output", "json"]);
    assert_eq!(status.code, 0, "{}", status.said);
    let json: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(
        json["stages"][0]["live"][0]["cluster"], "in-cluster",
        "{json}"
    );

    // When there is neither a kubeconfig nor a pod
    let nowhere = run(
        tagship(&["deploy", "--config", config_arg, "--version", "v2.0.0"])
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("HOME", &home),
    );
    // Then it is a usage error naming where credentials are looked for
    assert_eq!(nowhere.code, 2, "{}", nowhere.said);
    assert!(
        nowhere.said.contains("no Kubernetes credentials") && nowhere.said.contains("$KUBECONFIG"),
        "{}",
        nowhere.said
    );

    // When $KUBECONFIG names a file that does not exist
    let missing = run(
        tagship(&["plan", "--config", config_arg, "--version", "v2.0.0"])
            .env("KUBECONFIG", site.dir().join("nope.yaml"))
            .env("HOME", &home),
    );
    // Then it is a usage error naming the variable and the file
    assert_eq!(missing.code, 2, "{}", missing.said);
    assert!(
        missing.said.contains("$KUBECONFIG") && missing.said.contains("nope.yaml"),
        "{}",
        missing.said
    );
}
