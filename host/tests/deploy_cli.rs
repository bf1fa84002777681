//! `tagship deploy` end to end, as CI runs it: the real binary, the real local kube-apiserver
//! with the kubelet stand-in, the real Prometheus. `kubectl` is the independent witness.
//!
//! Needs the local environment: `tests/cluster/up`, then the variables of its `env` file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("run tests/cluster/up and export the variables of its env file ({name} is unset)")
    })
}

fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env("TAGSHIP_KUBECONFIG"))
        .args(args)
        .output()
        .unwrap()
}

fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stage namespaces of one test, created with the workloads "as Helm would", deleted at the end.
struct Site {
    prefix: String,
    dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        if std::env::var_os("TAGSHIP_KUBECONFIG").is_none() {
            return;
        }
        for stage in ["gstg-cny", "gstg", "gprd"] {
            let _ = kubectl(&["delete", "namespace", &self.ns(stage), "--wait=false"]);
        }
    }
}

impl Site {
    fn new(test: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 10_000;
        let site = Site {
            prefix: format!("{test}{nanos}"),
            dir: tempfile::tempdir().unwrap(),
        };
        for stage in ["gstg-cny", "gstg", "gprd"] {
            let ns = site.ns(stage);
            kubectl_ok(&["create", "namespace", &ns]);
            let manifest = deployment(&ns, "v1.0.0-gitlab");
            let path = site.dir.path().join(format!("{ns}.json"));
            std::fs::write(&path, manifest).unwrap();
            kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
        }
        for stage in ["gstg-cny", "gstg", "gprd"] {
            kubectl_ok(&[
                "rollout",
                "status",
                "deployment/gitlab-registry",
                "-n",
                &site.ns(stage),
                "--timeout=60s",
            ]);
        }
        site
    }

    fn ns(&self, stage: &str) -> String {
        // The simulator reads `X-cny` as environment X, stage cny.
        match stage {
            "gstg-cny" => format!("{}-gstg-cny", self.prefix),
            other => format!("{}-{other}", self.prefix),
        }
    }

    fn config(&self, bake: &str) -> PathBuf {
        let path = self.dir.path().join("tagship.toml");
        let prometheus = env("TAGSHIP_PROMETHEUS_URL");
        let grant = prometheus.trim_start_matches("http://");
        let text = format!(
            r#"kubeconfig = "{kubeconfig}"

[component]
name = "registry"
image = "registry.example.com/registry"
tag = "{{{{version}}}}-gitlab"

[lock]
namespace = "{lock_ns}"
ttl = "30s"
wait = "5s"

[plugins.health]
source = "builtin:prometheus-health"
allow_hosts = ["{grant}"]
config = {{ url = "{prometheus}", pass = "== 1" }}

[[stage]]
name = "gstg-cny"
environment = "gstg"
clusters = ["local-1"]
namespace = "{cny}"
workloads = [{{ deployment = "gitlab-registry", containers = ["registry"] }}]
rollout_timeout = "60s"
{bake}
[stage.plugin_config.health]
query = 'min(gitlab_deployment_health:service{{namespace="{cny}"}})'

[[stage]]
name = "gstg"
environment = "gstg"
clusters = ["local-1"]
namespace = "{gstg}"
workloads = [{{ deployment = "gitlab-registry", containers = ["registry"] }}]

[[stage]]
name = "gprd"
environment = "gprd"
clusters = ["local-1"]
namespace = "{gprd}"
gate = "manual"
workloads = [{{ deployment = "gitlab-registry", containers = ["registry"] }}]
"#,
            kubeconfig = env("TAGSHIP_KUBECONFIG"),
            lock_ns = self.ns("gstg"),
            cny = self.ns("gstg-cny"),
            gstg = self.ns("gstg"),
            gprd = self.ns("gprd"),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn image(&self, stage: &str) -> String {
        kubectl_ok(&[
            "get",
            "deployment",
            "gitlab-registry",
            "-n",
            &self.ns(stage),
            "-o",
            "jsonpath={.spec.template.spec.containers[?(@.name==\"registry\")].image}",
        ])
    }

    fn resource_version(&self, stage: &str) -> String {
        kubectl_ok(&[
            "get",
            "deployment",
            "gitlab-registry",
            "-n",
            &self.ns(stage),
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
    }
}

fn deployment(ns: &str, tag: &str) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "gitlab-registry", "namespace": ns, "labels": {"app": "registry"}},
        "spec": {
            "replicas": 2, "progressDeadlineSeconds": 10,
            "selector": {"matchLabels": {"app": "registry"}},
            "template": {
                "metadata": {"labels": {"app": "registry"}},
                "spec": {"containers": [
                    {"name": "registry", "image": format!("registry.example.com/registry:{tag}")},
                    {"name": "sidecar", "image": "busybox:1.36"}
                ]}
            }
        }
    })
    .to_string()
}

fn deploy(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tagship"))
        .arg("deploy")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("TAGSHIP_HOLDER", "e2e-test")
        .env(
            "TAGSHIP_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("tagship-cache"),
        )
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), said)
}

#[test]
fn a_release_walks_the_stages_stops_at_the_gate_and_a_rerun_changes_nothing() {
    // Given three stages serving v1.0.0, the last behind a manual gate
    let site = Site::new("e2ea");
    let config = site.config("");

    // When v2.0.0 is deployed, Then it stops before gprd, awaiting approval, and says how to go on
    let (code, said) = deploy(&config, &["--version", "v2.0.0"]);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("tagship deploy --version v2.0.0 --approve gprd"),
        "{said}"
    );
    assert_eq!(
        site.image("gstg-cny"),
        "registry.example.com/registry:v2.0.0-gitlab"
    );
    assert_eq!(
        site.image("gstg"),
        "registry.example.com/registry:v2.0.0-gitlab"
    );
    assert_eq!(
        site.image("gprd"),
        "registry.example.com/registry:v1.0.0-gitlab"
    );
    let sidecar = kubectl_ok(&[
        "get",
        "deployment",
        "gitlab-registry",
        "-n",
        &site.ns("gstg"),
        "-o",
        "jsonpath={.spec.template.spec.containers[1].image} {.spec.replicas}",
    ]);
    assert_eq!(sidecar, "busybox:1.36 2", "only the registry image changes");

    // When approved, Then gprd serves v2.0.0 too, with its audit annotations
    let (code, said) = deploy(&config, &["--version", "v2.0.0", "--approve", "gprd"]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(
        site.image("gprd"),
        "registry.example.com/registry:v2.0.0-gitlab"
    );
    let annotations = kubectl_ok(&[
        "get",
        "deployment",
        "gitlab-registry",
        "-n",
        &site.ns("gprd"),
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(
        annotations.contains("\"tagship.io/version\":\"v2.0.0\"")
            && annotations.contains("\"tagship.io/previous-version\":\"v1.0.0\""),
        "{annotations}"
    );
    let history = kubectl_ok(&[
        "get",
        "configmap",
        "tagship-history-gprd",
        "-n",
        &site.ns("gprd"),
        "-o",
        "jsonpath={.data.history\\.json}",
    ]);
    assert!(
        history.contains("\"deployed\"") && history.contains("v2.0.0"),
        "{history}"
    );

    // When the same command runs again, Then nothing changes
    let before: Vec<String> = ["gstg-cny", "gstg", "gprd"]
        .iter()
        .map(|s| site.resource_version(s))
        .collect();
    let (code, said) = deploy(&config, &["--version", "v2.0.0", "--approve", "gprd"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("already serving v2.0.0"), "{said}");
    let after: Vec<String> = ["gstg-cny", "gstg", "gprd"]
        .iter()
        .map(|s| site.resource_version(s))
        .collect();
    assert_eq!(before, after, "a re-run must not touch any Deployment");

    // When an older version is asked for, Then it is refused with nothing changed
    let (code, said) = deploy(&config, &["--version", "v1.5.0"]);
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("--allow-downgrade"), "{said}");
}

#[test]
fn a_crashlooping_release_is_rolled_back_and_later_stages_are_untouched() {
    let site = Site::new("e2eb");
    let config = site.config("");
    let (code, said) = deploy(&config, &["--version", "v2.0.0-crashloop"]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("ProgressDeadlineExceeded"), "{said}");
    assert!(said.contains("v1.0.0 serves again"), "{said}");
    assert_eq!(
        site.image("gstg-cny"),
        "registry.example.com/registry:v1.0.0-gitlab"
    );
    kubectl_ok(&[
        "rollout",
        "status",
        "deployment/gitlab-registry",
        "-n",
        &site.ns("gstg-cny"),
        "--timeout=60s",
    ]);
    assert_eq!(
        site.image("gstg"),
        "registry.example.com/registry:v1.0.0-gitlab"
    );
    let lease = kubectl_ok(&[
        "get",
        "lease",
        "tagship-gstg",
        "-n",
        &site.ns("gstg"),
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(lease, "", "the lock is released after the failure");
}

#[test]
fn an_errors_release_fails_its_bake_on_the_real_health_rule_and_is_rolled_back() {
    let site = Site::new("e2ec");
    let bake = "[stage.bake]\nchecks = [\"health\"]\nduration = \"40s\"\ninterval = \"4s\"\ninitial_delay = \"2s\"\n";
    let config = site.config(bake);
    let (code, said) = deploy(
        &config,
        &["--version", "v3.0.0-errors", "--until", "gstg-cny"],
    );
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("bake failed"), "{said}");
    assert!(said.contains("v1.0.0 serves again"), "{said}");
    assert_eq!(
        site.image("gstg-cny"),
        "registry.example.com/registry:v1.0.0-gitlab"
    );
}
