//! Configuration tests: a realistic file that parses, and a corpus of broken ones, each with
//! the exact error a user sees.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A realistic configuration: four stages over two environments, production over two clusters
/// with a manual gate, health/compat/notify plugins and both migrations.
const FULL: &str = r#"# The container registry, deployed next to the Rails app.
kubeconfig = "kube/config"

[component]
name = "registry"
image = "registry.example.com/gitlab-org/container-registry"
tag = "{{version}}-gitlab"

[lock]
namespace = "tagship"
ttl = "90s"
wait = "20m"

[migrations.pre]
command = ["registry", "database", "migrate", "up", "--skip-post-deployment"]
env = { REGISTRY_DATABASE_SSLMODE = "require" }
service_account = "registry-migrations"
timeout = "15m"
container = "registry"

[migrations.post]
command = ["registry", "database", "migrate", "up"]
backoff_limit = 1

[plugins.health]
source = "builtin:prometheus-health"
allow_hosts = ["prometheus.example:9090"]
config = { url = "http://prometheus.example:9090", pass = "== 1", query = 'gitlab_deployment_health:service{type="registry",env="{{environment}}",stage="main"}' }

[plugins.compat]
source = "plugins/rails-compat.wasm"
allow_hosts = ["gitlab.example.com"]
secrets = ["GITLAB_API_TOKEN"]

[plugins.compat.limits]
memory_mib = 128
wall = "1m"

[plugins.slack]
source = "builtin:slack-notify"
allow_hosts = ["hooks.slack.com"]
secrets = ["SLACK_WEBHOOK_URL"]

[[stage]]
name = "gstg-cny"
environment = "gstg"
clusters = ["gstg-regional"]
namespace = "gitlab-cny"
workloads = [{ deployment = "gitlab-registry", containers = ["registry"] }]
pre_checks = ["compat", "health"]
notify = ["slack"]

[stage.bake]
checks = ["health"]
duration = "10m"
interval = "30s"

[stage.plugin_config.health]
query = 'gitlab_deployment_health:service{type="registry",env="gstg",stage="cny"}'

[[stage]]
name = "gstg"
environment = "gstg"
clusters = ["gstg-regional"]
namespace = "gitlab"
workloads = [{ deployment = "gitlab-registry" }]
pre_checks = ["health"]
notify = ["slack"]
bake = { checks = ["health"], duration = "15m" }

[[stage]]
name = "gprd-cny"
environment = "gprd"
clusters = ["gprd-regional"]
namespace = "gitlab-cny"
workloads = [{ deployment = "gitlab-registry", containers = ["registry"] }]
gate = "manual"
pre_checks = ["compat", "health"]
notify = ["slack"]
rollout_timeout = "15m"

[stage.bake]
checks = ["health"]
duration = "30m"
failure_limit = 1
consecutive_error_limit = 3
unknown = "wait"
initial_delay = "2m"

[[stage]]
name = "gprd"
environment = "gprd"
clusters = ["gprd-us-east1-b", "gprd-us-east1-c"]
kubeconfig = "/etc/tagship/gprd.kubeconfig"
namespace = "gitlab"
workloads = [
  { deployment = "gitlab-registry", containers = ["registry"] },
  { deployment = "gitlab-registry-migrations-helper" },
]
pre_checks = ["health"]
notify = ["slack"]

[stage.bake]
checks = ["health"]
duration = "1h"
interval = "2m"
"#;

fn path() -> &'static Path {
    Path::new("deploy/tagship.toml")
}

fn full() -> Config {
    parse(FULL, path()).unwrap_or_else(|e| panic!("the full example must parse:\n{e}"))
}

const MINIMAL: &str = r#"[component]
name = "registry"
image = "registry.example.com/registry"

[[stage]]
name = "gstg"
environment = "gstg"
namespace = "gitlab"
workloads = [{ deployment = "gitlab-registry" }]
"#;

#[test]
fn the_full_example_parses_with_every_value_and_default() {
    let config = full();
    assert_eq!(config.path, path());
    assert_eq!(config.kubeconfig, Some(PathBuf::from("deploy/kube/config")));
    assert_eq!(config.component.name, "registry");
    assert_eq!(config.component.tag.as_str(), "{{version}}-gitlab");
    assert_eq!(config.lock.name, "tagship-{{environment}}");
    assert_eq!(config.lock.ttl, Duration::from_secs(90));
    assert_eq!(config.lock.wait, Duration::from_mins(20));

    let pre = config.migrations.pre.as_ref().unwrap();
    assert_eq!(pre.command.len(), 5);
    assert_eq!(pre.env["REGISTRY_DATABASE_SSLMODE"], "require");
    assert_eq!(pre.service_account.as_deref(), Some("registry-migrations"));
    assert_eq!(pre.timeout, Duration::from_mins(15));
    assert_eq!(pre.backoff_limit, 0);
    let post = config.migrations.post.as_ref().unwrap();
    assert_eq!(post.job.backoff_limit, 1);
    assert_eq!(post.job.timeout, Duration::from_mins(10));
    assert!(post.after_stage.is_empty());

    let compat = config.plugin("compat").unwrap();
    assert_eq!(
        compat.source,
        PluginSource::File(PathBuf::from("deploy/plugins/rails-compat.wasm"))
    );
    assert_eq!(compat.limits.memory_mib, Some(128));
    assert_eq!(compat.limits.wall, Some(Duration::from_mins(1)));
    assert_eq!(compat.limits.cpu, None);
    let health = config.plugin("health").unwrap();
    assert_eq!(
        health.source,
        PluginSource::Builtin("prometheus-health".into())
    );
    assert_eq!(health.config["pass"], "== 1");

    let names = config
        .stages
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>();
    assert_eq!(names, ["gstg-cny", "gstg", "gprd-cny", "gprd"]);
    let gstg = config.stage("gstg").unwrap();
    assert_eq!(gstg.gate, Gate::Auto);
    assert_eq!(gstg.rollout_timeout, Duration::from_mins(10));
    assert!(gstg.workloads[0].containers.is_empty());
    let bake = gstg.bake.as_ref().unwrap();
    assert_eq!(bake.interval, Duration::from_mins(1));
    assert_eq!((bake.failure_limit, bake.consecutive_error_limit), (0, 4));
    assert_eq!(bake.unknown, OnUnknown::Fail);
    assert_eq!(bake.initial_delay, Duration::ZERO);

    let gprd_cny = config.stage("gprd-cny").unwrap();
    assert_eq!(gprd_cny.gate, Gate::Manual);
    let bake = gprd_cny.bake.as_ref().unwrap();
    assert_eq!(
        (
            bake.failure_limit,
            bake.consecutive_error_limit,
            bake.unknown
        ),
        (1, 3, OnUnknown::Wait)
    );
    assert_eq!(bake.initial_delay, Duration::from_mins(2));

    let gprd = config.stage("gprd").unwrap();
    assert_eq!(gprd.clusters, ["gprd-us-east1-b", "gprd-us-east1-c"]);
    assert_eq!(gprd.workloads.len(), 2);
    assert_eq!(
        config.kubeconfig_for(gprd),
        Some(Path::new("/etc/tagship/gprd.kubeconfig"))
    );
    assert_eq!(
        config.kubeconfig_for(gstg),
        Some(Path::new("deploy/kube/config"))
    );
}

#[test]
fn environments_group_consecutive_stages_in_deploy_order() {
    let config = full();
    let environments = config.environments();
    assert_eq!(
        environments,
        [
            EnvironmentStages {
                name: "gstg",
                stages: 0..2
            },
            EnvironmentStages {
                name: "gprd",
                stages: 2..4
            },
        ]
    );
    let firsts = (0..5)
        .map(|i| config.first_stage_of_environment(i))
        .collect::<Vec<_>>();
    assert_eq!(firsts, [true, false, true, false, false]);
    assert_eq!(config.stage_index("gprd-cny"), Some(2));
}

#[test]
fn post_migrations_run_after_the_last_stage_of_each_environment_unless_named() {
    let cases = [
        ("", vec![1, 3]),
        ("after_stage = \"gprd\"\n", vec![3]),
        ("after_stage = [\"gprd-cny\", \"gstg-cny\"]\n", vec![0, 2]),
    ];
    for (after_stage, expected) in cases {
        let text = FULL.replace(
            "backoff_limit = 1\n",
            &format!("backoff_limit = 1\n{after_stage}"),
        );
        let config = parse(&text, path()).unwrap();
        assert_eq!(config.post_migration_stages(), expected, "{after_stage}");
    }
    let without = parse(MINIMAL, path()).unwrap();
    assert!(without.post_migration_stages().is_empty());
}

#[test]
fn the_lock_lives_per_environment_in_the_configured_or_first_stages_namespace() {
    let config = full();
    assert_eq!(config.lease_name("gprd"), "tagship-gprd");
    assert_eq!(config.lock_namespace("gprd"), Some("tagship"));
    let minimal = parse(MINIMAL, path()).unwrap();
    assert_eq!(minimal.lock_namespace("gstg"), Some("gitlab"));
    assert_eq!(minimal.lock_namespace("gprd"), None);
    assert_eq!(minimal.lock.ttl, Duration::from_mins(2));
    assert_eq!(minimal.lock.wait, Duration::from_mins(30));
    assert_eq!(minimal.component.tag.as_str(), "{{version}}");
    assert_eq!(minimal.kubeconfig, None);
}

#[test]
fn stage_plugin_config_is_merged_over_the_plugins_config() {
    let config = full();
    let cny = config.stage("gstg-cny").unwrap();
    let settings = config.plugin_settings(cny, "health").unwrap();
    assert_eq!(settings["url"], "http://prometheus.example:9090");
    assert!(settings["query"].contains("stage=\"cny\""));
    let gstg = config.stage("gstg").unwrap();
    let settings = config.plugin_settings(gstg, "health").unwrap();
    assert!(settings["query"].contains("{{environment}}"));
    assert_eq!(config.plugin_settings(gstg, "nope"), None);
}

#[test]
fn load_reads_the_file_and_names_it_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tagship.toml");
    fs_err::write(&file, MINIMAL).unwrap();
    assert_eq!(load(&file).unwrap().stages.len(), 1);
    let missing = dir.path().join("missing.toml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read(_)));
    assert!(err.to_string().contains("missing.toml"), "{err}");
    assert_eq!(
        err.hint(),
        Some(
            "pass the configuration with `--config PATH` (or `TAGSHIP_CONFIG`); the default is `tagship.toml` in the current directory"
        )
    );
    assert!(
        err.to_string()
            .ends_with(&format!("\nhint: {}", err.hint().unwrap())),
        "{err}"
    );
}

#[test]
fn hints_fit_the_mistake_in_tag_templates_and_commands() {
    let cases = [
        (
            "tag = \"{{version}}-gitlab\"",
            "tag = \"{{version}}/gitlab\"",
            "hint: an image tag may contain only letters, digits, `_`, `.` and `-`, e.g. `tag = \"{{version}}-gitlab\"`",
        ),
        (
            "tag = \"{{version}}-gitlab\"",
            "tag = \"{{version}}-{{version}}\"",
            "hint: write `{{version}}` once, e.g. `tag = \"{{version}}-gitlab\"`",
        ),
        (
            "command = [\"registry\", \"database\", \"migrate\", \"up\"]",
            "command = \"registry database migrate up\"",
            "hint: write each argument as its own string: `command = [\"registry\", \"database\", \"migrate\", \"up\"]`",
        ),
    ];
    for (find, replace, hint) in cases {
        assert!(FULL.contains(find), "{find}");
        let err = parse(&FULL.replacen(find, replace, 1), path()).unwrap_err();
        assert!(err.to_string().ends_with(hint), "{replace}: {err}");
    }
}

/// One broken configuration: `find` in [`FULL`] replaced by `replace`, and the full text the
/// user sees (`file:line:column: message`, then the hint line).
struct Broken {
    find: &'static str,
    replace: &'static str,
    error: &'static str,
}

const fn broken(find: &'static str, replace: &'static str, error: &'static str) -> Broken {
    Broken {
        find,
        replace,
        error,
    }
}

/// The bad-input corpus: each a one-place edit of [`FULL`] and the exact error it gives.
const BROKEN: &[Broken] = &[
    // Unknown keys at every level, with suggestions.
    broken(
        "kubeconfig = \"kube/config\"",
        "kubconfig = \"kube/config\"",
        "deploy/tagship.toml:2:1: unknown top-level key `kubconfig`\nhint: did you mean `kubeconfig`?",
    ),
    broken(
        "[migrations.pre]",
        "[migration.pre]",
        "deploy/tagship.toml:14:2: unknown top-level key `migration`\nhint: did you mean `migrations`?",
    ),
    broken(
        "tag = \"{{version}}-gitlab\"",
        "tags = \"{{version}}-gitlab\"",
        "deploy/tagship.toml:7:1: unknown key `tags` in [component]\nhint: did you mean `tag`?",
    ),
    broken(
        "wait = \"20m\"",
        "timeout = \"20m\"",
        "deploy/tagship.toml:12:1: unknown key `timeout` in [lock]\nhint: the keys allowed here are `name`, `namespace`, `ttl`, `wait`",
    ),
    broken(
        "[migrations.post]",
        "[migrations.postt]",
        "deploy/tagship.toml:21:13: unknown key `postt` in [migrations]\nhint: did you mean `post`?",
    ),
    broken(
        "container = \"registry\"",
        "containr = \"registry\"",
        "deploy/tagship.toml:19:1: unknown key `containr` in [migrations.pre]\nhint: did you mean `container`?",
    ),
    broken(
        "backoff_limit = 1",
        "backof_limit = 1",
        "deploy/tagship.toml:23:1: unknown key `backof_limit` in [migrations.post]\nhint: did you mean `backoff_limit`?",
    ),
    broken(
        "secrets = [\"SLACK_WEBHOOK_URL\"]",
        "secret = [\"SLACK_WEBHOOK_URL\"]",
        "deploy/tagship.toml:42:1: unknown key `secret` in [plugins.slack]\nhint: did you mean `secrets`?",
    ),
    broken(
        "memory_mib = 128",
        "memory_mb = 128",
        "deploy/tagship.toml:36:1: unknown key `memory_mb` in [plugins.compat.limits]\nhint: did you mean `memory_mib`?",
    ),
    broken(
        "namespace = \"gitlab-cny\"\nworkloads = [{ deployment = \"gitlab-registry\", containers = [\"registry\"] }]\npre_checks = [\"compat\", \"health\"]\nnotify",
        "namspace = \"gitlab-cny\"\nworkloads = [{ deployment = \"gitlab-registry\", containers = [\"registry\"] }]\npre_checks = [\"compat\", \"health\"]\nnotify",
        "deploy/tagship.toml:48:1: unknown key `namspace` in [[stage]] `gstg-cny`\nhint: did you mean `namespace`?",
    ),
    broken(
        "interval = \"30s\"",
        "intervall = \"30s\"",
        "deploy/tagship.toml:56:1: unknown key `intervall` in [stage.bake] of `gstg-cny`\nhint: did you mean `interval`?",
    ),
    broken(
        "{ deployment = \"gitlab-registry-migrations-helper\" }",
        "{ deploymnet = \"gitlab-registry-migrations-helper\" }",
        "deploy/tagship.toml:98:5: unknown key `deploymnet` in workload 2 of `gprd`\nhint: did you mean `deployment`?",
    ),
    // Types.
    broken(
        "ttl = \"90s\"",
        "ttl = 90",
        "deploy/tagship.toml:11:7: `ttl` in [lock] must be a duration with a unit, not a bare number\nhint: write `ttl = \"90s\"`",
    ),
    broken(
        "wait = \"20m\"",
        "wait = \"20 minutes\"",
        "deploy/tagship.toml:12:8: `wait` in [lock]: `20 minutes` is not a duration\nhint: write a number and a unit (`ms`, `s`, `m`, `h`), e.g. `500ms`, `30s`, `2m`, `1h30m`",
    ),
    broken(
        "pass = \"== 1\"",
        "pass = 1",
        "deploy/tagship.toml:28:59: `pass` in [plugins.health.config] must be a string, not an integer\nhint: quote it: `pass = \"1\"`",
    ),
    broken(
        "pre_checks = [\"health\"]\nnotify = [\"slack\"]\nbake",
        "pre_checks = \"health\"\nnotify = [\"slack\"]\nbake",
        "deploy/tagship.toml:67:14: `pre_checks` in [[stage]] `gstg` must be a list of strings, not a string\nhint: write a list: `pre_checks = [\"health\"]`",
    ),
    broken(
        "failure_limit = 1",
        "failure_limit = \"1\"",
        "deploy/tagship.toml:85:17: `failure_limit` in [stage.bake] of `gprd-cny` must be a whole number, not a string\nhint: remove the quotes: `failure_limit = 1`",
    ),
    broken(
        "memory_mib = 128",
        "memory_mib = 2048",
        "deploy/tagship.toml:36:14: `memory_mib` in [plugins.compat.limits] must be from 1 to 1024, not 2048\nhint: write a whole number from 1 to 1024",
    ),
    broken(
        "gate = \"manual\"",
        "gate = \"manaul\"",
        "deploy/tagship.toml:77:8: `gate` in [[stage]] `gprd-cny` must be one of `auto`, `manual`, not `manaul`\nhint: did you mean `manual`?",
    ),
    broken(
        "unknown = \"wait\"",
        "unknown = \"inconclusive\"",
        "deploy/tagship.toml:87:11: `unknown` in [stage.bake] of `gprd-cny` must be one of `fail`, `pass`, `wait`, not `inconclusive`\nhint: use one of `fail`, `pass`, `wait`",
    ),
    // Values.
    broken(
        "image = \"registry.example.com/gitlab-org/container-registry\"",
        "image = \"registry.example.com:5000/gitlab-org/container-registry:v3.1.0\"",
        "deploy/tagship.toml:6:9: `image` in [component] must not include a tag: `registry.example.com:5000/gitlab-org/container-registry:v3.1.0`\nhint: write `image = \"registry.example.com:5000/gitlab-org/container-registry\"` and put the tag's shape in `tag`, e.g. `tag = \"{{version}}\"` (found tag `v3.1.0`)",
    ),
    broken(
        "tag = \"{{version}}-gitlab\"",
        "tag = \"{{ version }}-gitlab\"",
        "deploy/tagship.toml:7:7: `tag` in [component]: tag template `{{ version }}-gitlab` does not contain `{{version}}`\nhint: write the version's place as `{{version}}`, e.g. `tag = \"{{version}}-gitlab\"`",
    ),
    broken(
        "ttl = \"90s\"",
        "ttl = \"10s\"",
        "deploy/tagship.toml:11:7: `ttl` in [lock] is `10s`, shorter than the minimum `15s`\nhint: the lock is renewed every ttl/3; use at least `ttl = \"15s\"` (default `2m`)",
    ),
    broken(
        "interval = \"2m\"",
        "interval = \"2h\"",
        "deploy/tagship.toml:106:12: `interval` in [stage.bake] of `gprd` is `2h`, longer than its `duration` `1h`\nhint: set `interval` to at most `1h`",
    ),
    broken(
        "bake = { checks = [\"health\"], duration = \"15m\" }",
        "bake = { checks = [\"health\"], duration = \"30s\" }",
        "deploy/tagship.toml:69:42: `duration` in [stage.bake] of `gstg` is `30s`, shorter than the default `interval` `1m`\nhint: set `interval` to at most `30s`",
    ),
    broken(
        "name = \"gprd-cny\"",
        "name = \"gprd_cny\"",
        "deploy/tagship.toml:72:8: `name` in [[stage]] `gprd_cny` is not a valid name\nhint: use lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters, e.g. `gprd-cny`",
    ),
    broken(
        "secrets = [\"SLACK_WEBHOOK_URL\"]",
        "secrets = [\"slack-webhook-url\"]",
        "deploy/tagship.toml:42:12: secret `slack-webhook-url` in [plugins.slack] is not a valid name\nhint: use uppercase letters, digits and `_`, not starting with a digit, like `SLACK_WEBHOOK_URL`, e.g. `SLACK_WEBHOOK_URL`",
    ),
    broken(
        "source = \"builtin:slack-notify\"",
        "source = \"slack-notify\"",
        "deploy/tagship.toml:40:10: `source` in [plugins.slack] is neither `builtin:NAME` nor a `.wasm` file: `slack-notify`\nhint: for a built-in plugin write `source = \"builtin:slack-notify\"`; for your own, the path of its `.wasm` component",
    ),
    broken(
        "allow_hosts = [\"hooks.slack.com\"]",
        "allow_hosts = [\"https://hooks.slack.com/services\"]",
        "deploy/tagship.toml:41:16: `allow_hosts` in [plugins.slack] must list hosts, not `https://hooks.slack.com/services`\nhint: write `host` or `host:port` without scheme or path, e.g. `\"hooks.slack.com\"`",
    ),
    broken(
        "[plugins.slack]",
        "[plugins.Slack]",
        "deploy/tagship.toml:39:10: plugin name `Slack` is not a valid name\nhint: use lowercase letters, digits and `-`, e.g. `slack`",
    ),
    broken(
        "workloads = [{ deployment = \"gitlab-registry\" }]",
        "workloads = []",
        "deploy/tagship.toml:66:13: `workloads` in [[stage]] `gstg` is empty\nhint: name at least one Deployment: `workloads = [{ deployment = \"gitlab-registry\" }]`",
    ),
    broken(
        "workloads = [{ deployment = \"gitlab-registry\" }]",
        "workloads = [\"gitlab-registry\"]",
        "deploy/tagship.toml:66:14: workload 1 of `gstg` must be a table, not a string\nhint: write `{ deployment = \"gitlab-registry\" }`",
    ),
    broken(
        "environment = \"gstg\"\nclusters = [\"gstg-regional\"]\nnamespace = \"gitlab\"",
        "clusters = [\"gstg-regional\"]\nnamespace = \"gitlab\"",
        "deploy/tagship.toml:61:1: [[stage]] `gstg` is missing `environment`\nhint: add `environment = \"gstg\"`",
    ),
    broken(
        "[component]\nname = \"registry\"\n",
        "[component]\n",
        "deploy/tagship.toml:4:1: [component] is missing `name`\nhint: add `name = \"registry\"`",
    ),
    broken(
        "pre_checks = [\"compat\", \"health\"]\nnotify = [\"slack\"]\nrollout",
        "pre_checks = [\"compat\", \"compat\"]\nnotify = [\"slack\"]\nrollout",
        "deploy/tagship.toml:78:25: `compat` appears twice in `pre_checks` in [[stage]] `gprd-cny`\nhint: list each name once",
    ),
    // Cross-references.
    broken(
        "name = \"gstg\"\nenvironment",
        "name = \"gstg-cny\"\nenvironment",
        "deploy/tagship.toml:62:8: stage name `gstg-cny` is used twice\nhint: stage names must be unique; the first `gstg-cny` is stage 1 of 4",
    ),
    broken(
        "name = \"gprd\"\nenvironment = \"gprd\"",
        "name = \"gprd\"\nenvironment = \"gstg\"",
        "deploy/tagship.toml:92:15: stages of environment `gstg` must be consecutive, but stage `gprd-cny` of `gprd` comes between `gstg` and `gprd`\nhint: move stage `gprd` next to the other stages of `gstg`; an environment's stages share its lock and migrations",
    ),
    broken(
        "pre_checks = [\"health\"]\nnotify = [\"slack\"]\nbake",
        "pre_checks = [\"helth\"]\nnotify = [\"slack\"]\nbake",
        "deploy/tagship.toml:67:15: stage `gstg` names plugin `helth` in `pre_checks`, but there is no [plugins.helth]\nhint: did you mean `health`?",
    ),
    broken(
        "checks = [\"health\"]\nduration = \"1h\"",
        "checks = [\"latency\"]\nduration = \"1h\"",
        "deploy/tagship.toml:104:11: stage `gprd` names plugin `latency` in `checks` of [stage.bake], but there is no [plugins.latency]\nhint: the plugins are `compat`, `health`, `slack`; or add `[plugins.latency]`",
    ),
    broken(
        "notify = [\"slack\"]\nrollout",
        "notify = [\"slak\"]\nrollout",
        "deploy/tagship.toml:79:11: stage `gprd-cny` names plugin `slak` in `notify`, but there is no [plugins.slak]\nhint: did you mean `slack`?",
    ),
    broken(
        "[stage.plugin_config.health]",
        "[stage.plugin_config.prometheus]",
        "deploy/tagship.toml:58:22: stage `gstg-cny` names plugin `prometheus` in `plugin_config`, but there is no [plugins.prometheus]\nhint: the plugins are `compat`, `health`, `slack`; or add `[plugins.prometheus]`",
    ),
    broken(
        "backoff_limit = 1",
        "backoff_limit = 1\nafter_stage = [\"gprd-cnyy\"]",
        "deploy/tagship.toml:24:16: `after_stage` in [migrations.post] names no stage: `gprd-cnyy`\nhint: did you mean `gprd-cny`?",
    ),
    broken(
        "backoff_limit = 1",
        "backoff_limit = 1\nafter_stage = [\"gprd-cny\", \"gprd\"]",
        "deploy/tagship.toml:24:28: `after_stage` in [migrations.post] names two stages of environment `gprd`: `gprd-cny` and `gprd`\nhint: post-deployment migrations run once per environment; keep one stage per environment",
    ),
    broken(
        "namespace = \"tagship\"",
        "name = \"Tagship-{{environment}}\"",
        "deploy/tagship.toml:10:8: lock name `Tagship-{{environment}}` gives the Lease name `Tagship-gstg` for environment `gstg`, which is not a valid Kubernetes name\nhint: a Lease name uses lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters; check `name` in [lock] and the environment's name",
    ),
    // TOML syntax.
    broken(
        "wait = \"20m\"",
        "wait = 20m",
        "deploy/tagship.toml:12:8: invalid TOML: string values must be quoted, expected literal string\nhint: quote it: `\"20m\"`",
    ),
    broken(
        "[[stage]]\nname = \"gprd\"\n",
        "[[stage]]\nname = \"gprd\"\nname = \"gprd\"\n",
        "deploy/tagship.toml:92:1: duplicate key `name`\nhint: a key may appear only once in a table",
    ),
];

#[test]
fn broken_configurations_are_reported_at_the_offending_key_or_value_with_a_hint() {
    assert!(BROKEN.len() >= 25);
    let mut failures = Vec::new();
    for case in BROKEN {
        assert!(
            FULL.contains(case.find),
            "the fixture has no `{}`",
            case.find
        );
        let text = FULL.replacen(case.find, case.replace, 1);
        match parse(&text, path()) {
            Ok(_) => failures.push(format!("`{}` parsed, but should fail", case.replace)),
            Err(err) if err.to_string() != case.error => failures.push(format!(
                "`{}`:\n  expected: {:?}\n  actual:   {:?}",
                case.replace,
                case.error,
                err.to_string()
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Broken variations of a small file, where a whole section matters more than one key.
#[test]
fn missing_and_misplaced_sections_are_reported_with_a_hint() {
    let cases = [
        (
            "",
            "t.toml:1:1: the configuration has no [component] table\nhint: add `[component]` with `name = \"registry\"` and `image = \"registry.example.com/registry\"`",
        ),
        (
            "[component]\nname = \"registry\"\nimage = \"r.example/registry\"\n",
            "t.toml:1:1: the configuration has no stages\nhint: add at least one `[[stage]]` with `name`, `environment`, `namespace` and `workloads`",
        ),
        (
            "[component]\nname = \"registry\"\nimage = \"r.example/registry\"\n[stage]\nname = \"gstg\"\n",
            "t.toml:4:2: `stage` must be a list of tables, not a table\nhint: write each stage as `[[stage]]` (two brackets), and its bake as `[stage.bake]` after it",
        ),
        (
            "stage = []\n[component]\nname = \"registry\"\nimage = \"r.example/registry\"\n",
            "t.toml:1:9: the configuration has no stages\nhint: add at least one `[[stage]]` with `name`, `environment`, `namespace` and `workloads`",
        ),
    ];
    for (text, expected) in cases {
        let err = parse(text, Path::new("t.toml")).unwrap_err();
        assert_eq!(err.to_string(), expected, "{text}");
    }
}

#[test]
fn mistakes_in_plugins_migrations_and_the_lock_are_reported_with_a_hint() {
    let cases = [
        (
            "lock = \"gitlab\"\n",
            "t.toml:1:8: `lock` must be a table, not a string\nhint: write `[lock]` on its own line, followed by its keys",
        ),
        (
            "[plugins.health]\nsource = \"builtin:prometheus-health\"\nconfig = { verbose = true }\n",
            "t.toml:3:22: `verbose` in [plugins.health.config] must be a string, not a boolean\nhint: quote it: `verbose = \"true\"`",
        ),
        (
            "[plugins.health]\nsource = \"builtin:prometheus\"\n",
            "t.toml:2:10: `source` in [plugins.health] names no built-in plugin: `builtin:prometheus`\nhint: did you mean `builtin:prometheus-health`?",
        ),
        (
            "[plugins.health]\nsource = \"builtin:datadog\"\n",
            "t.toml:2:10: `source` in [plugins.health] names no built-in plugin: `builtin:datadog`\nhint: the built-in plugins are `prometheus-health`, `http-health`, `slack-notify`, `webhook-notify`, `gitlab-notify`, `rails-compat`; for your own plugin, give the path of its `.wasm` component",
        ),
        (
            "[plugins.health]\nsource = \"prometheus-health\"\n",
            "t.toml:2:10: `source` in [plugins.health] is neither `builtin:NAME` nor a `.wasm` file: `prometheus-health`\nhint: for a built-in plugin write `source = \"builtin:prometheus-health\"`; for your own, the path of its `.wasm` component",
        ),
        (
            "[plugins.health]\nsource = \"datadog\"\n",
            "t.toml:2:10: `source` in [plugins.health] is neither `builtin:NAME` nor a `.wasm` file: `datadog`\nhint: the built-in plugins are `prometheus-health`, `http-health`, `slack-notify`, `webhook-notify`, `gitlab-notify`, `rails-compat` (`source = \"builtin:NAME\"`); for your own, the path of its `.wasm` component",
        ),
        (
            "[plugins.health]\nsource = \"builtin:\"\n",
            "t.toml:2:10: `source` in [plugins.health] names no built-in plugin: `builtin:`\nhint: write `builtin:` and the built-in's name, e.g. `source = \"builtin:prometheus-health\"`",
        ),
        (
            "[plugins.health]\n",
            "t.toml:1:1: [plugins.health] is missing `source`\nhint: add `source = \"builtin:prometheus-health\"`",
        ),
        (
            "[plugins.health]\nsource = \"builtin:prometheus-health\"\n[plugins.health.limits]\ncpu = \"0s\"\n",
            "t.toml:4:7: `cpu` in [plugins.health.limits] must be longer than `0s`\nhint: remove `cpu` to use the default",
        ),
        (
            "[migrations.pre]\ncommand = []\n",
            "t.toml:2:11: `command` in [migrations.pre] is empty\nhint: give the program and its arguments, e.g. `command = [\"registry\", \"database\", \"migrate\", \"up\"]`",
        ),
        (
            "[migrations.pre]\ncommand = [\"registry\"]\nenv = { SKIP-POST = \"1\" }\n",
            "t.toml:3:9: environment variable `SKIP-POST` of [migrations.pre] is not a valid name\nhint: use letters, digits and `_`, not starting with a digit, e.g. `SKIP_POST`",
        ),
        (
            "[migrations.pre]\ncommand = [\"registry\", 1]\n",
            "t.toml:2:24: items of `command` in [migrations.pre] must be strings, not an integer\nhint: quote it: `\"1\"`",
        ),
        (
            "[plugins.slack]\nsource = \"builtin:slack-notify\"\nevents = [\"deploy-failed\", \"rollback-start\"]\n",
            "t.toml:3:28: `events` in [plugins.slack] names `rollback-start`, which is not an event tagship sends\nhint: did you mean `rollback-started`?",
        ),
        (
            "[lock]\nname = \"tagship-{{env}}\"\n",
            "t.toml:2:8: `name` in [lock] has a placeholder other than `{{environment}}`: `tagship-{{env}}`\nhint: only `{{environment}}` is replaced, e.g. `name = \"tagship-{{environment}}\"`",
        ),
    ];
    for (extra, expected) in cases {
        let text = format!("{extra}{MINIMAL}");
        // Line numbers above count from the start of `extra`, which comes first.
        let err = parse(&text, Path::new("t.toml")).unwrap_err();
        assert_eq!(err.to_string(), expected, "{extra}");
    }
}

#[test]
fn the_release_keys_have_their_defaults_and_parse_as_written() {
    let minimal = parse(MINIMAL, Path::new("t.toml")).unwrap();
    assert_eq!(minimal.component.pin, Pin::Tag);
    assert_eq!(minimal.component.registry_url, None);
    assert_eq!(minimal.component.registry_credentials, None);
    let gstg = &minimal.stages[0];
    assert!(gstg.fail_fast, "fail fast by default");
    assert_eq!(gstg.restarts_allowed, 0);
    assert_eq!(gstg.image, None);
    assert_eq!(
        minimal.repository_for(gstg),
        "registry.example.com/registry"
    );

    let text = MINIMAL
        .replace(
            "image = \"registry.example.com/registry\"\n",
            "image = \"registry.example.com/registry\"\npin = \"digest\"\nregistry_url = \"https://registry.example.com/\"\nregistry_user_env = \"CI_REGISTRY_USER\"\nregistry_password_env = \"CI_REGISTRY_PASSWORD\"\n",
        )
        .replace(
            "namespace = \"gitlab\"\n",
            "namespace = \"gitlab\"\nimage = \"mirror.example.com/registry\"\nfail_fast = false\nrestarts_allowed = 3\n",
        );
    let text = format!(
        "[migrations.pre]\ncommand = [\"registry\"]\ncontainer = \"gitlab-registry/registry\"\n{text}"
    );
    let config = parse(&text, Path::new("t.toml")).unwrap();
    let c = &config.component;
    assert_eq!(c.pin, Pin::Digest);
    assert_eq!(
        c.registry_url.as_deref(),
        Some("https://registry.example.com")
    );
    assert_eq!(
        c.registry_credentials,
        Some(("CI_REGISTRY_USER".into(), "CI_REGISTRY_PASSWORD".into()))
    );
    let gstg = &config.stages[0];
    assert!(!gstg.fail_fast);
    assert_eq!(gstg.restarts_allowed, 3);
    assert_eq!(config.repository_for(gstg), "mirror.example.com/registry");
    assert_eq!(
        config.component_repositories(gstg),
        [
            "registry.example.com/registry",
            "mirror.example.com/registry"
        ]
    );
    assert_eq!(
        config.migrations.pre.unwrap().container,
        Some(ContainerRef {
            deployment: Some("gitlab-registry".into()),
            container: "registry".into()
        })
    );
}

#[test]
fn mistakes_in_the_release_keys_are_reported_with_a_hint() {
    let cases = [
        (
            "pin = \"sha\"\n",
            "t.toml:4:7: `pin` in [component] must be one of `tag`, `digest`, not `sha`\nhint: use one of `tag`, `digest`",
        ),
        (
            "registry_url = \"registry.example.com\"\n",
            "t.toml:4:16: `registry_url` in [component] is not an http(s) URL: `registry.example.com`\nhint: give the registry's base URL, e.g. `registry_url = \"https://registry.example.com\"`",
        ),
        (
            "registry_user_env = \"CI_REGISTRY_USER\"\n",
            "t.toml:4:21: `registry_user_env` and `registry_password_env` in [component] go together\nhint: name both environment variables, e.g. `registry_user_env = \"CI_REGISTRY_USER\"` and `registry_password_env = \"CI_REGISTRY_PASSWORD\"`, or neither for anonymous pulls",
        ),
    ];
    for (extra, expected) in cases {
        let text = MINIMAL.replace(
            "image = \"registry.example.com/registry\"\n",
            &format!("image = \"registry.example.com/registry\"\n{extra}"),
        );
        let err = parse(&text, Path::new("t.toml")).unwrap_err();
        assert_eq!(err.to_string(), expected, "{extra}");
    }
    let stage_cases = [
        (
            "image = \"mirror.example.com/registry:v1\"\n",
            "t.toml:10:9: `image` in [[stage]] `gstg` must not include a tag: `mirror.example.com/registry:v1`\nhint: write `image = \"mirror.example.com/registry\"` and put the tag's shape in `tag`, e.g. `tag = \"{{version}}\"` (found tag `v1`)",
        ),
        (
            "fail_fast = \"false\"\n",
            "t.toml:10:13: `fail_fast` in [[stage]] `gstg` must be true or false, not a string\nhint: remove the quotes: `fail_fast = false`",
        ),
        (
            "restarts_allowed = -1\n",
            "t.toml:10:20: `restarts_allowed` in [[stage]] `gstg` must be from 0 to 1000, not -1\nhint: write a whole number from 0 to 1000",
        ),
    ];
    for (extra, expected) in stage_cases {
        let text = format!("{MINIMAL}{extra}");
        let err = parse(&text, Path::new("t.toml")).unwrap_err();
        assert_eq!(err.to_string(), expected, "{extra}");
    }
    let text = format!("[migrations.pre]\ncommand = [\"r\"]\ncontainer = \"a/b/c\"\n{MINIMAL}");
    assert_eq!(
        parse(&text, Path::new("t.toml")).unwrap_err().to_string(),
        "t.toml:3:13: `container` in [migrations.pre] is not a container name: `a/b/c`\nhint: write the container's name, e.g. `container = \"registry\"`, or `deployment/container`, e.g. `container = \"gitlab-registry/registry\"`"
    );
}

#[test]
fn a_notifier_hears_the_events_it_names_and_every_event_by_default() {
    let text = format!(
        "[plugins.slack]\nsource = \"builtin:slack-notify\"\nevents = [\"deploy-failed\", \"rollback-started\"]\n[plugins.hook]\nsource = \"builtin:webhook-notify\"\n{MINIMAL}"
    );
    let config = parse(&text, Path::new("t.toml")).unwrap();
    let slack = config.plugin("slack").unwrap().events.clone().unwrap();
    assert_eq!(
        slack.into_iter().collect::<Vec<_>>(),
        [
            crate::context::EventKind::DeployFailed,
            crate::context::EventKind::RollbackStarted
        ]
    );
    assert_eq!(config.plugin("hook").unwrap().events, None);
}

#[test]
fn errors_expose_position_message_and_hint_separately() {
    let text = MINIMAL.replace("namespace = \"gitlab\"", "namspace = \"gitlab\"");
    let err = parse(&text, Path::new("tagship.toml")).unwrap_err();
    assert_eq!(err.position(), Some((8, 1)));
    assert_eq!(err.message(), "unknown key `namspace` in [[stage]] `gstg`");
    assert_eq!(err.hint(), Some("did you mean `namespace`?"));
    assert_eq!(
        err.to_string(),
        "tagship.toml:8:1: unknown key `namspace` in [[stage]] `gstg`\nhint: did you mean `namespace`?"
    );
}

#[test]
fn the_documented_local_example_parses() {
    let text = include_str!("../../../examples/local/tagship.toml");
    let config = parse(text, Path::new("examples/local/tagship.toml"))
        .unwrap_or_else(|e| panic!("examples/local/tagship.toml must parse:\n{e}"));
    let gprd = config.stage("gprd").unwrap();
    assert_eq!(gprd.clusters, ["local-1", "local-2"]);
    assert!(
        gprd.workloads[0].containers.is_empty(),
        "the component's containers by default"
    );
    let pre = config.migrations.pre.unwrap();
    assert_eq!(pre.container.unwrap().container, "registry");
}
