//! Reads the parsed TOML tree (with spans) into the schema: unknown keys, types, defaults,
//! and every check that needs only the value at hand.
//!
//! Checks that relate one part of the file to another (stage names, plugin references,
//! environments) are `validate.rs`'s; this module records where the names it leaves to them
//! were written, in [`Spans`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::{format_duration, parse_duration};
use super::error::Problem;
use super::names::{NameRule, closest, quoted_list};
use super::schema::{
    Bake, Component, Config, ContainerRef, Gate, Lock, Migration, Migrations, OnUnknown, Pin,
    Plugin, PluginLimits, PluginSource, PostMigration, Stage, Workload,
};
use crate::version::{TagTemplate, VersionError};

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<Cow<'i, str>>;
/// A string and where it was written.
pub(crate) type Text = Spanned<String>;

/// The default Lease name.
pub(crate) const DEFAULT_LEASE_NAME: &str = "tagship-{{environment}}";
/// The placeholder of the Lease name.
pub(crate) const ENVIRONMENT_PLACEHOLDER: &str = "{{environment}}";
/// The shortest lock `ttl`: renewal every `ttl / 3` must survive a slow API server.
pub(crate) const MIN_LOCK_TTL: Duration = Duration::from_secs(15);
const DEFAULT_LOCK_TTL: Duration = Duration::from_mins(2);
const DEFAULT_LOCK_WAIT: Duration = Duration::from_mins(30);
const DEFAULT_MIGRATION_TIMEOUT: Duration = Duration::from_mins(10);
const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_mins(10);
const DEFAULT_BAKE_INTERVAL: Duration = Duration::from_mins(1);

const TOP_KEYS: &[&str] = &[
    "kubeconfig",
    "component",
    "lock",
    "migrations",
    "plugins",
    "stage",
];
const COMPONENT_KEYS: &[&str] = &[
    "name",
    "image",
    "tag",
    "pin",
    "registry_url",
    "registry_user_env",
    "registry_password_env",
];
const LOCK_KEYS: &[&str] = &["name", "namespace", "ttl", "wait"];
const MIGRATIONS_KEYS: &[&str] = &["pre", "post"];
const MIGRATION_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "service_account",
    "backoff_limit",
    "timeout",
    "container",
];
const POST_MIGRATION_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "service_account",
    "backoff_limit",
    "timeout",
    "container",
    "after_stage",
];
const PLUGIN_KEYS: &[&str] = &[
    "source",
    "config",
    "allow_hosts",
    "secrets",
    "limits",
    "events",
];
const LIMITS_KEYS: &[&str] = &["memory_mib", "cpu", "wall"];
const STAGE_KEYS: &[&str] = &[
    "name",
    "environment",
    "clusters",
    "kubeconfig",
    "namespace",
    "workloads",
    "gate",
    "pre_checks",
    "notify",
    "rollout_timeout",
    "image",
    "fail_fast",
    "restarts_allowed",
    "bake",
    "plugin_config",
];
const WORKLOAD_KEYS: &[&str] = &["deployment", "containers"];
const BAKE_KEYS: &[&str] = &[
    "checks",
    "duration",
    "interval",
    "failure_limit",
    "consecutive_error_limit",
    "unknown",
    "initial_delay",
];

/// Where the names that `validate.rs` cross-checks were written.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    /// One per stage, in order.
    pub(crate) stages: Vec<StageSpans>,
    /// One per `after_stage` entry of `[migrations.post]`.
    pub(crate) after_stage: Vec<Span>,
    /// `name` in `[lock]`, when given.
    pub(crate) lock_name: Option<Span>,
}

/// Where one stage's names were written.
#[derive(Debug)]
pub(crate) struct StageSpans {
    pub(crate) name: Span,
    pub(crate) environment: Span,
    pub(crate) references: Vec<Reference>,
}

/// A plugin named by a stage.
#[derive(Debug)]
pub(crate) struct Reference {
    /// The key it was named under (`pre_checks`, `notify`, `checks` of `[stage.bake]`,
    /// `plugin_config`).
    pub(crate) field: &'static str,
    pub(crate) name: Text,
}

/// Reads a parsed document. `path` is only used to resolve relative paths.
pub(crate) fn read(
    text: &str,
    doc: &Spanned<DeTable<'_>>,
    path: &Path,
) -> Result<(Config, Spans), Problem> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let top = Section {
        text,
        table: doc.get_ref(),
        span: 0..0,
        place: String::new(),
    };
    top.check_keys(TOP_KEYS)?;
    let mut spans = Spans::default();

    let kubeconfig = top.path("kubeconfig")?.map(|p| resolve(dir, p.get_ref()));
    let component = match top.table("component", "[component]".into())? {
        Some(section) => read_component(&section)?,
        None => {
            return Err(Problem::new(0..0, "the configuration has no [component] table").hint(
                "add `[component]` with `name = \"registry\"` and `image = \"registry.example.com/registry\"`",
            ));
        }
    };
    let lock = match top.table("lock", "[lock]".into())? {
        Some(section) => read_lock(&section, &mut spans)?,
        None => Lock {
            name: DEFAULT_LEASE_NAME.to_owned(),
            namespace: None,
            ttl: DEFAULT_LOCK_TTL,
            wait: DEFAULT_LOCK_WAIT,
        },
    };
    let migrations = match top.table("migrations", "[migrations]".into())? {
        Some(section) => read_migrations(&section, &mut spans)?,
        None => Migrations::default(),
    };
    let plugins = match top.table("plugins", "[plugins]".into())? {
        Some(section) => read_plugins(&section, dir)?,
        None => BTreeMap::new(),
    };
    let stages = read_stages(&top, dir, &mut spans)?;

    let config = Config {
        path: path.to_owned(),
        kubeconfig,
        component,
        lock,
        migrations,
        plugins,
        stages,
    };
    Ok((config, spans))
}

fn read_component(section: &Section<'_, '_>) -> Result<Component, Problem> {
    section.check_keys(COMPONENT_KEYS)?;
    let name = section.required_string("name", "\"registry\"")?;
    if name.get_ref().trim().is_empty() {
        return Err(Problem::new(name.span(), "`name` in [component] is empty")
            .hint("name the component, e.g. `name = \"registry\"`"));
    }
    let image = section.required_string("image", "\"registry.example.com/registry\"")?;
    check_image(&image, &section.what("image"))?;
    let tag = match section.string("tag")? {
        Some(tag) => tag.get_ref().parse::<TagTemplate>().map_err(|e| {
            let hint = match &e {
                VersionError::RepeatedPlaceholder { .. } => {
                    "write `{{version}}` once, e.g. `tag = \"{{version}}-gitlab\"`"
                }
                VersionError::InvalidTagCharacter { .. } => {
                    "an image tag may contain only letters, digits, `_`, `.` and `-`, e.g. `tag = \"{{version}}-gitlab\"`"
                }
                _ => {
                    "write the version's place as `{{version}}`, e.g. `tag = \"{{version}}-gitlab\"`"
                }
            };
            Problem::new(tag.span(), format!("`tag` in [component]: {e}")).hint(hint)
        })?,
        None => TagTemplate::default(),
    };
    let pin = match section.choice("pin", &["tag", "digest"])? {
        Some("digest") => Pin::Digest,
        _ => Pin::Tag,
    };
    let registry_url = match section.string("registry_url")? {
        Some(url) => {
            let parsed = url::Url::parse(url.get_ref())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if parsed.is_none() {
                return Err(Problem::new(
                    url.span(),
                    format!(
                        "{} is not an http(s) URL: `{}`",
                        section.what("registry_url"),
                        url.get_ref()
                    ),
                )
                .hint("give the registry's base URL, e.g. `registry_url = \"https://registry.example.com\"`"));
            }
            Some(url.get_ref().trim_end_matches('/').to_owned())
        }
        None => None,
    };
    let user = section.name("registry_user_env", NameRule::EnvVar)?;
    let password = section.name("registry_password_env", NameRule::EnvVar)?;
    let registry_credentials = match (user, password) {
        (Some(user), Some(password)) => Some((user.into_inner(), password.into_inner())),
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            return Err(Problem::new(
                one.span(),
                "`registry_user_env` and `registry_password_env` in [component] go together",
            )
            .hint("name both environment variables, e.g. `registry_user_env = \"CI_REGISTRY_USER\"` and `registry_password_env = \"CI_REGISTRY_PASSWORD\"`, or neither for anonymous pulls"));
        }
    };
    Ok(Component {
        name: name.into_inner(),
        image: image.into_inner(),
        tag,
        pin,
        registry_url,
        registry_credentials,
    })
}

/// `image` (named `what`, e.g. ``` `image` in [component] ```) is a repository without tag or
/// digest.
fn check_image(image: &Text, what: &str) -> Result<(), Problem> {
    let value = image.get_ref();
    let problem = |message: String| Problem::new(image.span(), message);
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(problem(format!(
            "{what} is not an image repository: `{value}`"
        ))
        .hint(
            "write the repository without a tag, e.g. `image = \"registry.example.com/registry\"`",
        ));
    }
    if let Some((repository, _)) = value.split_once('@') {
        return Err(
            problem(format!("{what} must not include a digest: `{value}`")).hint(format!(
                "tagship sets the tag per version; write `image = \"{repository}\"`"
            )),
        );
    }
    let last_slash = value.rfind('/').map_or(0, |i| i + 1);
    if let Some(colon) = value[last_slash..].find(':') {
        let (repository, tag) = value.split_at(last_slash + colon);
        return Err(problem(format!(
            "{what} must not include a tag: `{value}`"
        ))
        .hint(format!(
            "write `image = \"{repository}\"` and put the tag's shape in `tag`, e.g. `tag = \"{{{{version}}}}\"` (found tag `{}`)",
            &tag[1..]
        )));
    }
    Ok(())
}

fn read_lock(section: &Section<'_, '_>, spans: &mut Spans) -> Result<Lock, Problem> {
    section.check_keys(LOCK_KEYS)?;
    let name = match section.string("name")? {
        Some(name) => {
            let rest = name.get_ref().replace(ENVIRONMENT_PLACEHOLDER, "");
            if rest.contains("{{") || rest.contains("}}") {
                return Err(Problem::new(
                    name.span(),
                    format!(
                        "`name` in [lock] has a placeholder other than `{{{{environment}}}}`: `{}`",
                        name.get_ref()
                    ),
                )
                .hint(
                    "only `{{environment}}` is replaced, e.g. `name = \"tagship-{{environment}}\"`",
                ));
            }
            spans.lock_name = Some(name.span());
            name.into_inner()
        }
        None => DEFAULT_LEASE_NAME.to_owned(),
    };
    let namespace = section
        .name("namespace", NameRule::Label)?
        .map(Spanned::into_inner);
    let ttl = section
        .duration("ttl")?
        .map_or(Ok(DEFAULT_LOCK_TTL), |ttl| {
            if *ttl.get_ref() < MIN_LOCK_TTL {
                Err(Problem::new(
                    ttl.span(),
                    format!(
                        "`ttl` in [lock] is `{}`, shorter than the minimum `15s`",
                        format_duration(*ttl.get_ref())
                    ),
                )
                .hint(
                    "the lock is renewed every ttl/3; use at least `ttl = \"15s\"` (default `2m`)",
                ))
            } else {
                Ok(ttl.into_inner())
            }
        })?;
    let wait = section
        .duration("wait")?
        .map_or(DEFAULT_LOCK_WAIT, Spanned::into_inner);
    Ok(Lock {
        name,
        namespace,
        ttl,
        wait,
    })
}

fn read_migrations(section: &Section<'_, '_>, spans: &mut Spans) -> Result<Migrations, Problem> {
    section.check_keys(MIGRATIONS_KEYS)?;
    let pre = match section.table("pre", "[migrations.pre]".into())? {
        Some(pre) => {
            pre.check_keys(MIGRATION_KEYS)?;
            Some(read_migration(&pre)?)
        }
        None => None,
    };
    let post = match section.table("post", "[migrations.post]".into())? {
        Some(post) => {
            post.check_keys(POST_MIGRATION_KEYS)?;
            let job = read_migration(&post)?;
            let after_stage = match post.string_or_list("after_stage")? {
                Some((list_span, names)) => {
                    if names.is_empty() {
                        return Err(Problem::new(
                            list_span,
                            "`after_stage` in [migrations.post] is empty",
                        )
                        .hint("remove `after_stage` to run post-deployment migrations after the last stage of each environment"));
                    }
                    unique(&names, &post.what("after_stage"))?;
                    spans.after_stage = names.iter().map(Spanned::span).collect();
                    names.into_iter().map(Spanned::into_inner).collect()
                }
                None => Vec::new(),
            };
            Some(PostMigration { job, after_stage })
        }
        None => None,
    };
    Ok(Migrations { pre, post })
}

fn read_migration(section: &Section<'_, '_>) -> Result<Migration, Problem> {
    let command = section.required_string_list(
        "command",
        "[\"registry\", \"database\", \"migrate\", \"up\"]",
    )?;
    if command.get_ref().is_empty() {
        return Err(
            Problem::new(command.span(), format!("{} is empty", section.what("command")))
                .hint("give the program and its arguments, e.g. `command = [\"registry\", \"database\", \"migrate\", \"up\"]`"),
        );
    }
    let args = section.string_list("args")?.unwrap_or_default();
    let env = match section.table("env", format!("`env` of {}", section.place))? {
        Some(env) => env
            .string_map()?
            .into_iter()
            .map(|(key, value)| {
                if NameRule::EnvVar.allows(key.get_ref()) {
                    Ok((key.into_inner(), value.into_inner()))
                } else {
                    Err(invalid_name(
                        &key,
                        &format!(
                            "environment variable `{}` of {}",
                            key.get_ref(),
                            section.place
                        ),
                        NameRule::EnvVar,
                    ))
                }
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        None => BTreeMap::new(),
    };
    let service_account = section
        .name("service_account", NameRule::Subdomain)?
        .map(Spanned::into_inner);
    let backoff_limit = section
        .count("backoff_limit", 0, 1000)?
        .map_or(0, Spanned::into_inner);
    let timeout = section
        .positive_duration("timeout")?
        .unwrap_or(DEFAULT_MIGRATION_TIMEOUT);
    let container = match section.string("container")? {
        Some(text) => Some(container_ref(&text, &section.what("container"))?),
        None => None,
    };
    Ok(Migration {
        command: strings(command.into_inner()),
        args: strings(args),
        env,
        service_account,
        backoff_limit,
        timeout,
        container,
    })
}

/// `container` or `deployment/container`.
fn container_ref(text: &Text, what: &str) -> Result<ContainerRef, Problem> {
    let value = text.get_ref();
    let (deployment, container) = match value.split_once('/') {
        Some((deployment, container)) => (Some(deployment), container),
        None => (None, value.as_str()),
    };
    let valid = NameRule::Label.allows(container)
        && deployment.is_none_or(|d| NameRule::Subdomain.allows(d));
    if !valid {
        return Err(Problem::new(
            text.span(),
            format!("{what} is not a container name: `{value}`"),
        )
        .hint("write the container's name, e.g. `container = \"registry\"`, or `deployment/container`, e.g. `container = \"gitlab-registry/registry\"`"));
    }
    Ok(ContainerRef {
        deployment: deployment.map(str::to_owned),
        container: container.to_owned(),
    })
}

fn read_plugins(
    section: &Section<'_, '_>,
    dir: &Path,
) -> Result<BTreeMap<String, Plugin>, Problem> {
    let mut plugins = BTreeMap::new();
    for (key, value) in section.entries() {
        let name = key.get_ref().as_ref();
        if !NameRule::Plugin.allows(name) {
            let text = Spanned::new(key.span(), name.to_owned());
            return Err(invalid_name(
                &text,
                &format!("plugin name `{name}`"),
                NameRule::Plugin,
            ));
        }
        let DeValue::Table(table) = value.get_ref() else {
            return Err(Problem::new(
                value.span(),
                format!(
                    "`plugins.{name}` must be a table, not {}",
                    article(value.get_ref().type_str())
                ),
            )
            .hint(format!(
                "write `[plugins.{name}]` followed by `source = \"builtin:prometheus-health\"`"
            )));
        };
        let plugin = Section {
            text: section.text,
            table,
            span: value.span(),
            place: format!("[plugins.{name}]"),
        };
        plugins.insert(name.to_owned(), read_plugin(&plugin, name, dir)?);
    }
    Ok(plugins)
}

/// `source` of `[plugins.NAME]`: `builtin:NAME` of a built-in plugin, or a `.wasm` file.
fn read_source(section: &Section<'_, '_>, name: &str, dir: &Path) -> Result<PluginSource, Problem> {
    let source_text = section.required_string("source", "\"builtin:prometheus-health\"")?;
    let source = match source_text.get_ref().strip_prefix("builtin:") {
        Some(builtin) if crate::plugins::BUILTIN_NAMES.contains(&builtin) => {
            PluginSource::Builtin(builtin.to_owned())
        }
        Some(builtin) if NameRule::Plugin.allows(builtin) => {
            let known = crate::plugins::BUILTIN_NAMES;
            let hint = match closest_builtin(builtin) {
                Some(suggestion) => format!("did you mean `builtin:{suggestion}`?"),
                None => format!(
                    "the built-in plugins are {}; for your own plugin, give the path of its `.wasm` component",
                    quoted_list(known.iter().copied())
                ),
            };
            return Err(Problem::new(
                source_text.span(),
                format!(
                    "`source` in [plugins.{name}] names no built-in plugin: `{}`",
                    source_text.get_ref()
                ),
            )
            .hint(hint));
        }
        Some(_) => {
            return Err(Problem::new(
                source_text.span(),
                format!(
                    "`source` in [plugins.{name}] names no built-in plugin: `{}`",
                    source_text.get_ref()
                ),
            )
            .hint("write `builtin:` and the built-in's name, e.g. `source = \"builtin:prometheus-health\"`"));
        }
        None => {
            let file = source_text.get_ref();
            if !Path::new(file)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wasm"))
            {
                return Err(Problem::new(
                    source_text.span(),
                    format!(
                        "`source` in [plugins.{name}] is neither `builtin:NAME` nor a `.wasm` file: `{file}`"
                    ),
                )
                .hint(match closest_builtin(file) {
                    Some(builtin) => format!(
                        "for a built-in plugin write `source = \"builtin:{builtin}\"`; for your own, the path of its `.wasm` component"
                    ),
                    None => format!(
                        "the built-in plugins are {} (`source = \"builtin:NAME\"`); for your own, the path of its `.wasm` component",
                        quoted_list(crate::plugins::BUILTIN_NAMES.iter().copied())
                    ),
                }));
            }
            PluginSource::File(resolve(dir, file))
        }
    };
    Ok(source)
}

fn read_plugin(section: &Section<'_, '_>, name: &str, dir: &Path) -> Result<Plugin, Problem> {
    section.check_keys(PLUGIN_KEYS)?;
    let source = read_source(section, name, dir)?;
    let config = match section.table("config", format!("[plugins.{name}.config]"))? {
        Some(config) => config
            .string_map()?
            .into_iter()
            .map(|(k, v)| (k.into_inner(), v.into_inner()))
            .collect(),
        None => BTreeMap::new(),
    };
    let allow_hosts = section.string_list("allow_hosts")?.unwrap_or_default();
    for host in &allow_hosts {
        let value = host.get_ref();
        if value.is_empty() || value.contains('/') || value.chars().any(char::is_whitespace) {
            let bare = value
                .split_once("://")
                .map_or(value.as_str(), |(_, rest)| rest)
                .split('/')
                .next()
                .unwrap_or_default();
            return Err(Problem::new(
                host.span(),
                format!("`allow_hosts` in [plugins.{name}] must list hosts, not `{value}`"),
            )
            .hint(format!(
                "write `host` or `host:port` without scheme or path, e.g. `\"{}\"`",
                if bare.is_empty() {
                    "prometheus.example:9090"
                } else {
                    bare
                }
            )));
        }
    }
    unique(&allow_hosts, &section.what("allow_hosts"))?;
    let secrets = section.string_list("secrets")?.unwrap_or_default();
    for secret in &secrets {
        if !NameRule::Secret.allows(secret.get_ref()) {
            return Err(invalid_name(
                secret,
                &format!("secret `{}` in [plugins.{name}]", secret.get_ref()),
                NameRule::Secret,
            ));
        }
    }
    unique(&secrets, &section.what("secrets"))?;
    let limits = read_limits(section, name)?;
    let events = match section.string_list("events")? {
        None => None,
        Some(list) => Some(event_kinds(&list, name)?),
    };
    Ok(Plugin {
        name: name.to_owned(),
        source,
        config,
        allow_hosts: strings(allow_hosts),
        secrets: strings(secrets),
        limits,
        events,
    })
}

/// The built-in plugin `word` most likely means: a likely typo of its name, or the one
/// built-in whose name has `word` as its first part (`prometheus` → `prometheus-health`).
pub(crate) fn closest_builtin(word: &str) -> Option<&'static str> {
    let known = crate::plugins::BUILTIN_NAMES;
    closest(word, known.iter().copied()).or_else(|| {
        let word = word.to_lowercase();
        let mut starting = known
            .iter()
            .filter(|name| name.split('-').next() == Some(word.as_str()));
        match (starting.next(), starting.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    })
}

/// `[plugins.NAME.limits]`, default when absent.
fn read_limits(section: &Section<'_, '_>, name: &str) -> Result<PluginLimits, Problem> {
    Ok(
        match section.table("limits", format!("[plugins.{name}.limits]"))? {
            Some(limits) => {
                limits.check_keys(LIMITS_KEYS)?;
                PluginLimits {
                    memory_mib: limits
                        .count("memory_mib", 1, 1024)?
                        .map(Spanned::into_inner),
                    cpu: limits.positive_duration("cpu")?,
                    wall: limits.positive_duration("wall")?,
                }
            }
            None => PluginLimits::default(),
        },
    )
}

/// The event kinds of a notifier's `events`, each one a kind tagship sends.
fn event_kinds(
    list: &[Text],
    plugin: &str,
) -> Result<std::collections::BTreeSet<crate::context::EventKind>, Problem> {
    use crate::context::EventKind;
    let names = || EventKind::SENT.iter().map(|k| k.name());
    let mut kinds = std::collections::BTreeSet::new();
    for item in list {
        let Some(kind) = EventKind::SENT
            .into_iter()
            .find(|k| k.name() == item.get_ref())
        else {
            let hint = match closest(item.get_ref(), names()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("use some of {}", quoted_list(names())),
            };
            return Err(Problem::new(
                item.span(),
                format!(
                    "`events` in [plugins.{plugin}] names `{}`, which is not an event tagship sends",
                    item.get_ref()
                ),
            )
            .hint(hint));
        };
        kinds.insert(kind);
    }
    Ok(kinds)
}

fn read_stages(
    top: &Section<'_, '_>,
    dir: &Path,
    spans: &mut Spans,
) -> Result<Vec<Stage>, Problem> {
    let no_stages = |span: Span| {
        Problem::new(span, "the configuration has no stages").hint(
            "add at least one `[[stage]]` with `name`, `environment`, `namespace` and `workloads`",
        )
    };
    let Some((key, value)) = top.table.get_key_value("stage") else {
        return Err(no_stages(0..0));
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Err(Problem::new(
            key.span(),
            format!(
                "`stage` must be a list of tables, not {}",
                article(value.get_ref().type_str())
            ),
        )
        .hint("write each stage as `[[stage]]` (two brackets), and its bake as `[stage.bake]` after it"));
    };
    if items.is_empty() {
        return Err(no_stages(value.span()));
    }
    let mut stages = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let DeValue::Table(table) = item.get_ref() else {
            return Err(Problem::new(
                item.span(),
                format!(
                    "each stage must be a table, not {}",
                    article(item.get_ref().type_str())
                ),
            )
            .hint("write each stage as `[[stage]]` followed by its keys"));
        };
        // Name the stage in messages by its name when it has a usable one.
        let place = match table.get("name").map(Spanned::get_ref) {
            Some(DeValue::String(name)) if !name.is_empty() => format!("[[stage]] `{name}`"),
            _ => format!("[[stage]] #{}", index + 1),
        };
        let section = Section {
            text: top.text,
            table,
            span: item.span(),
            place,
        };
        let (stage, stage_spans) = read_stage(&section, dir)?;
        stages.push(stage);
        spans.stages.push(stage_spans);
    }
    Ok(stages)
}

fn read_stage(section: &Section<'_, '_>, dir: &Path) -> Result<(Stage, StageSpans), Problem> {
    section.check_keys(STAGE_KEYS)?;
    let name = section.required_name("name", NameRule::Label, "\"gstg-cny\"")?;
    let of_stage = format!("of `{}`", name.get_ref());
    let environment = section.required_name("environment", NameRule::Label, "\"gstg\"")?;
    let clusters = section.string_list("clusters")?.unwrap_or_default();
    if let Some(empty) = clusters.iter().find(|c| c.get_ref().is_empty()) {
        return Err(Problem::new(
            empty.span(),
            format!("{} has an empty context name", section.what("clusters")),
        )
        .hint(
            "list kubeconfig context names, or leave `clusters` out to use the current context",
        ));
    }
    unique(&clusters, &section.what("clusters"))?;
    let kubeconfig = section
        .path("kubeconfig")?
        .map(|p| resolve(dir, p.get_ref()));
    let namespace = section.required_name("namespace", NameRule::Label, "\"gitlab\"")?;
    let workloads = read_workloads(section, &of_stage)?;
    let gate = match section.choice("gate", &["auto", "manual"])? {
        Some("manual") => Gate::Manual,
        _ => Gate::Auto,
    };
    let mut references = Vec::new();
    let pre_checks = section.string_list("pre_checks")?.unwrap_or_default();
    unique(&pre_checks, &section.what("pre_checks"))?;
    references.extend(pre_checks.iter().map(|n| Reference {
        field: "pre_checks",
        name: n.clone(),
    }));
    let notify = section.string_list("notify")?.unwrap_or_default();
    unique(&notify, &section.what("notify"))?;
    references.extend(notify.iter().map(|n| Reference {
        field: "notify",
        name: n.clone(),
    }));
    let rollout_timeout = section
        .positive_duration("rollout_timeout")?
        .unwrap_or(DEFAULT_ROLLOUT_TIMEOUT);
    let (image, fail_fast, restarts_allowed) = read_release_keys(section)?;
    let bake = match section.table("bake", format!("[stage.bake] {of_stage}"))? {
        Some(bake) => Some(read_bake(&bake, &mut references)?),
        None => None,
    };
    let plugin_config = read_plugin_config(section, &of_stage, &mut references)?;
    let spans = StageSpans {
        name: name.span(),
        environment: environment.span(),
        references,
    };
    let stage = Stage {
        name: name.into_inner(),
        environment: environment.into_inner(),
        clusters: strings(clusters),
        kubeconfig,
        namespace: namespace.into_inner(),
        workloads,
        gate,
        pre_checks: strings(pre_checks),
        notify: strings(notify),
        rollout_timeout,
        image,
        fail_fast,
        restarts_allowed,
        bake,
        plugin_config,
    };
    Ok((stage, spans))
}

/// `[stage.plugin_config.NAME]` tables of a stage, by plugin name; each plugin named is a
/// reference to check.
fn read_plugin_config(
    section: &Section<'_, '_>,
    of_stage: &str,
    references: &mut Vec<Reference>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, Problem> {
    let mut plugin_config = BTreeMap::new();
    if let Some(table) = section.table("plugin_config", format!("`plugin_config` {of_stage}"))? {
        for (key, value) in table.entries() {
            let plugin = key.get_ref().as_ref();
            let DeValue::Table(settings) = value.get_ref() else {
                return Err(Problem::new(
                    value.span(),
                    format!(
                        "`plugin_config.{plugin}` {of_stage} must be a table of settings, not {}",
                        article(value.get_ref().type_str())
                    ),
                )
                .hint(format!(
                    "write `[stage.plugin_config.{plugin}]` after the stage, followed by `key = \"value\"` lines"
                )));
            };
            references.push(Reference {
                field: "plugin_config",
                name: Spanned::new(key.span(), plugin.to_owned()),
            });
            let settings = Section {
                text: section.text,
                table: settings,
                span: value.span(),
                place: format!("[stage.plugin_config.{plugin}] {of_stage}"),
            };
            let map = settings
                .string_map()?
                .into_iter()
                .map(|(k, v)| (k.into_inner(), v.into_inner()))
                .collect();
            plugin_config.insert(plugin.to_owned(), map);
        }
    }
    Ok(plugin_config)
}

/// A stage's `image`, `fail_fast` and `restarts_allowed`, with their defaults.
fn read_release_keys(section: &Section<'_, '_>) -> Result<(Option<String>, bool, u32), Problem> {
    let image = match section.string("image")? {
        Some(image) => {
            check_image(&image, &section.what("image"))?;
            Some(image.into_inner())
        }
        None => None,
    };
    let fail_fast = section.boolean("fail_fast")?.unwrap_or(true);
    let restarts_allowed = section
        .count("restarts_allowed", 0, 1000)?
        .map_or(0, Spanned::into_inner);
    Ok((image, fail_fast, restarts_allowed))
}

fn read_workloads(section: &Section<'_, '_>, of_stage: &str) -> Result<Vec<Workload>, Problem> {
    let example = "[{ deployment = \"gitlab-registry\" }]";
    let Some(value) = section.get("workloads") else {
        return Err(section.missing("workloads", example));
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Err(section
            .wrong_type("workloads", value, "a list of tables")
            .hint(format!("write `workloads = {example}`")));
    };
    if items.is_empty() {
        return Err(Problem::new(
            value.span(),
            format!("{} is empty", section.what("workloads")),
        )
        .hint(format!(
            "name at least one Deployment: `workloads = {example}`"
        )));
    }
    let mut workloads = Vec::with_capacity(items.len());
    let mut deployments: Vec<Text> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let DeValue::Table(table) = item.get_ref() else {
            let hint = match item.get_ref() {
                DeValue::String(s) => format!("write `{{ deployment = \"{s}\" }}`"),
                _ => format!("write `workloads = {example}`"),
            };
            return Err(Problem::new(
                item.span(),
                format!(
                    "workload {} {of_stage} must be a table, not {}",
                    index + 1,
                    article(item.get_ref().type_str())
                ),
            )
            .hint(hint));
        };
        let workload = Section {
            text: section.text,
            table,
            span: item.span(),
            place: format!("workload {} {of_stage}", index + 1),
        };
        workload.check_keys(WORKLOAD_KEYS)?;
        let deployment =
            workload.required_name("deployment", NameRule::Subdomain, "\"gitlab-registry\"")?;
        let containers = workload.string_list("containers")?.unwrap_or_default();
        for container in &containers {
            if !NameRule::Label.allows(container.get_ref()) {
                return Err(invalid_name(
                    container,
                    &format!("container `{}` in {}", container.get_ref(), workload.place),
                    NameRule::Label,
                ));
            }
        }
        unique(&containers, &workload.what("containers"))?;
        deployments.push(deployment.clone());
        workloads.push(Workload {
            deployment: deployment.into_inner(),
            containers: strings(containers),
        });
    }
    unique(&deployments, &format!("the workloads {of_stage}"))?;
    Ok(workloads)
}

fn read_bake(section: &Section<'_, '_>, references: &mut Vec<Reference>) -> Result<Bake, Problem> {
    section.check_keys(BAKE_KEYS)?;
    let checks = section.required_string_list("checks", "[\"health\"]")?;
    if checks.get_ref().is_empty() {
        return Err(Problem::new(
            checks.span(),
            format!("{} is empty", section.what("checks")),
        )
        .hint("name the health plugins to run, e.g. `checks = [\"health\"]`, or remove the bake"));
    }
    let checks = checks.into_inner();
    unique(&checks, &section.what("checks"))?;
    references.extend(checks.iter().map(|n| Reference {
        field: "checks",
        name: n.clone(),
    }));
    let Some(duration) = section.duration("duration")? else {
        return Err(section.missing("duration", "\"15m\""));
    };
    if duration.get_ref().is_zero() {
        return Err(Problem::new(
            duration.span(),
            format!("{} is zero", section.what("duration")),
        )
        .hint("bake for a while, e.g. `duration = \"15m\"`, or remove the bake"));
    }
    let interval = section.positive_duration_spanned("interval")?;
    let interval_value = interval
        .as_ref()
        .map_or(DEFAULT_BAKE_INTERVAL, |i| *i.get_ref());
    if interval_value > *duration.get_ref() {
        let (span, message) = match &interval {
            Some(i) => (
                i.span(),
                format!(
                    "{} is `{}`, longer than its `duration` `{}`",
                    section.what("interval"),
                    format_duration(interval_value),
                    format_duration(*duration.get_ref())
                ),
            ),
            None => (
                duration.span(),
                format!(
                    "{} is `{}`, shorter than the default `interval` `1m`",
                    section.what("duration"),
                    format_duration(*duration.get_ref())
                ),
            ),
        };
        return Err(Problem::new(span, message).hint(format!(
            "set `interval` to at most `{}`",
            format_duration(*duration.get_ref())
        )));
    }
    let failure_limit = section
        .count("failure_limit", 0, 10_000)?
        .map_or(0, Spanned::into_inner);
    let consecutive_error_limit = section
        .count("consecutive_error_limit", 0, 10_000)?
        .map_or(4, Spanned::into_inner);
    let unknown = match section.choice("unknown", &["fail", "pass", "wait"])? {
        Some("pass") => OnUnknown::Pass,
        Some("wait") => OnUnknown::Wait,
        _ => OnUnknown::Fail,
    };
    let initial_delay = section
        .duration("initial_delay")?
        .map_or(Duration::ZERO, Spanned::into_inner);
    Ok(Bake {
        checks: strings(checks),
        duration: duration.into_inner(),
        interval: interval_value,
        failure_limit,
        consecutive_error_limit,
        unknown,
        initial_delay,
    })
}

/// One table of the document and how messages name it.
struct Section<'a, 'i> {
    text: &'a str,
    table: &'a DeTable<'i>,
    /// The table's header or inline value; where "missing key" errors point.
    span: Span,
    /// `[lock]`, ``[[stage]] `gstg` ``; empty at the top level.
    place: String,
}

impl<'a, 'i> Section<'a, 'i> {
    /// The entries in the order they were written.
    fn entries(&self) -> Vec<(&'a Key<'i>, &'a Value<'i>)> {
        let mut entries = self.table.iter().collect::<Vec<_>>();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
    }

    fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    /// `` `key` in [place] ``.
    fn what(&self, key: &str) -> String {
        if self.place.is_empty() {
            format!("`{key}`")
        } else {
            format!("`{key}` in {}", self.place)
        }
    }

    fn check_keys(&self, allowed: &[&str]) -> Result<(), Problem> {
        for (key, _) in self.entries() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let message = if self.place.is_empty() {
                format!("unknown top-level key `{name}`")
            } else {
                format!("unknown key `{name}` in {}", self.place)
            };
            let hint = match closest(name, allowed.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!(
                    "the keys allowed here are {}",
                    quoted_list(allowed.iter().copied())
                ),
            };
            return Err(Problem::new(key.span(), message).hint(hint));
        }
        Ok(())
    }

    fn missing(&self, key: &str, example: &str) -> Problem {
        let owner = if self.place.is_empty() {
            "the configuration"
        } else {
            &self.place
        };
        Problem::new(self.span.clone(), format!("{owner} is missing `{key}`"))
            .hint(format!("add `{key} = {example}`"))
    }

    fn wrong_type(&self, key: &str, value: &Value<'_>, expected: &str) -> Problem {
        Problem::new(
            value.span(),
            format!(
                "{} must be {expected}, not {}",
                self.what(key),
                article(value.get_ref().type_str())
            ),
        )
    }

    /// "quote it" for a scalar written where a string belongs.
    fn quote_hint(&self, key: &str, value: &Value<'_>) -> Option<String> {
        match value.get_ref() {
            DeValue::Integer(_)
            | DeValue::Float(_)
            | DeValue::Boolean(_)
            | DeValue::Datetime(_) => {
                let raw = &self.text[value.span()];
                Some(format!("quote it: `{key} = \"{raw}\"`"))
            }
            _ => None,
        }
    }

    fn table(&self, key: &str, place: String) -> Result<Option<Section<'a, 'i>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Table(table) => Ok(Some(Section {
                text: self.text,
                table,
                span: value.span(),
                place,
            })),
            _ => Err(self.wrong_type(key, value, "a table").hint(format!(
                "write `{place}` on its own line, followed by its keys"
            ))),
        }
    }

    fn string(&self, key: &str) -> Result<Option<Text>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::String(s) => Ok(Some(Spanned::new(value.span(), s.to_string()))),
            _ => Err(self
                .wrong_type(key, value, "a string")
                .maybe_hint(self.quote_hint(key, value))),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(Some(*b)),
            DeValue::String(s) if matches!(s.as_ref(), "true" | "false") => Err(self
                .wrong_type(key, value, "true or false")
                .hint(format!("remove the quotes: `{key} = {s}`"))),
            _ => Err(self
                .wrong_type(key, value, "true or false")
                .hint(format!("write `{key} = true` or `{key} = false`"))),
        }
    }

    fn required_string(&self, key: &str, example: &str) -> Result<Text, Problem> {
        self.string(key)?.ok_or_else(|| self.missing(key, example))
    }

    /// A string following `rule`.
    fn name(&self, key: &str, rule: NameRule) -> Result<Option<Text>, Problem> {
        let Some(name) = self.string(key)? else {
            return Ok(None);
        };
        if rule.allows(name.get_ref()) {
            Ok(Some(name))
        } else {
            Err(invalid_name(&name, &self.what(key), rule))
        }
    }

    fn required_name(&self, key: &str, rule: NameRule, example: &str) -> Result<Text, Problem> {
        self.name(key, rule)?
            .ok_or_else(|| self.missing(key, example))
    }

    /// A non-empty path string.
    fn path(&self, key: &str) -> Result<Option<Text>, Problem> {
        let Some(path) = self.string(key)? else {
            return Ok(None);
        };
        if path.get_ref().trim().is_empty() {
            return Err(
                Problem::new(path.span(), format!("{} is empty", self.what(key))).hint(format!(
                    "give a file path, or remove `{key}` to use the default"
                )),
            );
        }
        Ok(Some(path))
    }

    /// One of `choices`, with a suggestion for a typo.
    fn choice(&self, key: &str, choices: &[&'static str]) -> Result<Option<&'static str>, Problem> {
        let choices_hint = || format!("use one of {}", quoted_list(choices.iter().copied()));
        let Some(value) = self.string(key).map_err(|p| p.hint(choices_hint()))? else {
            return Ok(None);
        };
        if let Some(choice) = choices.iter().find(|c| **c == value.get_ref()) {
            return Ok(Some(choice));
        }
        let hint = match closest(value.get_ref(), choices.iter().copied()) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None => choices_hint(),
        };
        Err(Problem::new(
            value.span(),
            format!(
                "{} must be one of {}, not `{}`",
                self.what(key),
                quoted_list(choices.iter().copied()),
                value.get_ref()
            ),
        )
        .hint(hint))
    }

    fn string_list(&self, key: &str) -> Result<Option<Vec<Text>>, Problem> {
        Ok(self.spanned_string_list(key)?.map(Spanned::into_inner))
    }

    fn required_string_list(
        &self,
        key: &str,
        example: &str,
    ) -> Result<Spanned<Vec<Text>>, Problem> {
        self.spanned_string_list(key)?
            .ok_or_else(|| self.missing(key, example))
    }

    fn spanned_string_list(&self, key: &str) -> Result<Option<Spanned<Vec<Text>>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let DeValue::Array(items) = value.get_ref() else {
            let hint = match value.get_ref() {
                // A command written as one string is a list of its words, not one program.
                DeValue::String(s) if key == "command" && s.contains(' ') => Some(format!(
                    "write each argument as its own string: `{key} = [{}]`",
                    s.split_whitespace()
                        .map(|w| format!("\"{w}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                DeValue::String(s) => Some(format!("write a list: `{key} = [\"{s}\"]`")),
                _ => None,
            };
            return Err(self
                .wrong_type(key, value, "a list of strings")
                .maybe_hint(hint));
        };
        let items = items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok(Spanned::new(item.span(), s.to_string())),
                other => {
                    let problem = Problem::new(
                        item.span(),
                        format!(
                            "items of {} must be strings, not {}",
                            self.what(key),
                            article(other.type_str())
                        ),
                    );
                    Err(match other {
                        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                            problem.hint(format!("quote it: `\"{}\"`", &self.text[item.span()]))
                        }
                        _ => problem.hint(format!("write `{key} = [\"a\", \"b\"]`")),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Spanned::new(value.span(), items)))
    }

    /// A string or a list of strings; the span is the whole value's.
    fn string_or_list(&self, key: &str) -> Result<Option<(Span, Vec<Text>)>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        if let DeValue::String(s) = value.get_ref() {
            return Ok(Some((
                value.span(),
                vec![Spanned::new(value.span(), s.to_string())],
            )));
        }
        let list = self
            .spanned_string_list(key)
            .map_err(|p| Problem {
                message: p.message.replace(
                    "must be a list of strings",
                    "must be a string or a list of strings",
                ),
                ..p
            })?
            .unwrap_or_else(|| Spanned::new(value.span(), Vec::new()));
        Ok(Some((list.span(), list.into_inner())))
    }

    /// Every value a string; keys in the order written.
    fn string_map(&self) -> Result<Vec<(Text, Text)>, Problem> {
        self.entries()
            .into_iter()
            .map(|(key, value)| {
                let name = key.get_ref().as_ref();
                match value.get_ref() {
                    DeValue::String(s) => Ok((
                        Spanned::new(key.span(), name.to_owned()),
                        Spanned::new(value.span(), s.to_string()),
                    )),
                    DeValue::Table(_) | DeValue::Array(_) => Err(self
                        .wrong_type(name, value, "a string")
                        .hint("settings are flat `key = \"value\"` strings")),
                    _ => Err(self
                        .wrong_type(name, value, "a string")
                        .maybe_hint(self.quote_hint(name, value))),
                }
            })
            .collect()
    }

    fn duration(&self, key: &str) -> Result<Option<Spanned<Duration>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::String(s) => parse_duration(s)
                .map(|d| Some(Spanned::new(value.span(), d)))
                .map_err(|e| {
                    Problem::new(value.span(), format!("{}: {e}", self.what(key))).hint(e.hint())
                }),
            DeValue::Integer(n) => Err(Problem::new(
                value.span(),
                format!(
                    "{} must be a duration with a unit, not a bare number",
                    self.what(key)
                ),
            )
            .hint(format!("write `{key} = \"{}s\"`", n.as_str()))),
            _ => Err(self
                .wrong_type(key, value, "a duration like `30s`")
                .hint(format!("write `{key} = \"30s\"`"))),
        }
    }

    fn positive_duration_spanned(&self, key: &str) -> Result<Option<Spanned<Duration>>, Problem> {
        match self.duration(key)? {
            Some(d) if d.get_ref().is_zero() => Err(Problem::new(
                d.span(),
                format!("{} must be longer than `0s`", self.what(key)),
            )
            .hint(format!("remove `{key}` to use the default"))),
            other => Ok(other),
        }
    }

    fn positive_duration(&self, key: &str) -> Result<Option<Duration>, Problem> {
        Ok(self
            .positive_duration_spanned(key)?
            .map(Spanned::into_inner))
    }

    /// A whole number within `min..=max`.
    fn count(&self, key: &str, min: u32, max: u32) -> Result<Option<Spanned<u32>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let number = match value.get_ref() {
            DeValue::Integer(n) => i64::from_str_radix(n.as_str(), n.radix()).ok(),
            DeValue::String(s) => {
                return Err(self
                    .wrong_type(key, value, "a whole number")
                    .hint(format!("remove the quotes: `{key} = {s}`")));
            }
            _ => {
                return Err(self
                    .wrong_type(key, value, "a whole number")
                    .hint(format!("write a whole number from {min} to {max}")));
            }
        };
        match number.and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(Spanned::new(value.span(), n))),
            _ => Err(Problem::new(
                value.span(),
                format!(
                    "{} must be from {min} to {max}, not {}",
                    self.what(key),
                    &self.text[value.span()]
                ),
            )
            .hint(format!("write a whole number from {min} to {max}"))),
        }
    }
}

/// `what` (already naming the value) is not a valid name under `rule`.
fn invalid_name(name: &Text, what: &str, rule: NameRule) -> Problem {
    let value = name.get_ref();
    let message = if value.is_empty() {
        format!("{what} is empty")
    } else if what.contains(&format!("`{value}`")) {
        format!("{what} is not a valid name")
    } else {
        format!("{what} is not a valid name: `{value}`")
    };
    let fixed = match rule {
        NameRule::Secret => value.to_ascii_uppercase().replace(['-', '.', ' '], "_"),
        NameRule::EnvVar => value.replace(['-', '.', ' '], "_"),
        _ => value.to_ascii_lowercase().replace(['_', ' '], "-"),
    };
    let hint = if !value.is_empty() && fixed != *value && rule.allows(&fixed) {
        format!("use {}, e.g. `{fixed}`", rule.explain())
    } else {
        format!("use {}", rule.explain())
    };
    Problem::new(name.span(), message).hint(hint)
}

/// The second occurrence of a repeated name is an error.
fn unique(items: &[Text], what: &str) -> Result<(), Problem> {
    for (index, item) in items.iter().enumerate() {
        if items[..index]
            .iter()
            .any(|earlier| earlier.get_ref() == item.get_ref())
        {
            return Err(Problem::new(
                item.span(),
                format!("`{}` appears twice in {what}", item.get_ref()),
            )
            .hint("list each name once"));
        }
    }
    Ok(())
}

fn strings(items: Vec<Text>) -> Vec<String> {
    items.into_iter().map(Spanned::into_inner).collect()
}

fn resolve(dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        dir.join(path)
    }
}

/// `a string`, `an integer`.
fn article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let type_name = if type_name == "array" {
        "list"
    } else {
        type_name
    };
    let article = if type_name == "list" { "a" } else { article };
    format!("{article} {type_name}")
}
