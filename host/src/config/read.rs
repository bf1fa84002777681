//! Reads the parsed TOML tree (with spans) into the schema: unknown keys, types, defaults,
//! and every check that needs only the value at hand.
//!
//! Checks that relate one part of the file to another (stage names, plugin references,
//! environments) are `validate.rs`'s; this module records where the names it leaves to them
//! were written, in [`Spans`].
//!
//! This file reads the top level, `[component]`, `[lock]` and `[migrations]`; the plugin tables
//! are read in `plugins`, the stages in `stages`, each table's allowed keys beside its reader.
//! The generic reader of one table (typed getters, spans, unknown keys) is `super::section`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::DeTable;

use super::duration::format_duration;
use super::error::Problem;
use super::names::NameRule;
use super::schema::{
    Component, Config, ContainerRef, Lock, Migration, Migrations, Pin, PostMigration,
};
use crate::version::{TagTemplate, VersionError};

mod plugins;
mod stages;

pub(crate) use super::section::Text;
use super::section::{Section, Span, invalid_name};
pub(crate) use plugins::closest_builtin;
use plugins::read_plugins;
use stages::read_stages;

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

const TOP_KEYS: &[&str] = &[
    "kubeconfig",
    "component",
    "lock",
    "migrations",
    "plugins",
    "stage",
];

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

const COMPONENT_KEYS: &[&str] = &[
    "name",
    "image",
    "tag",
    "pin",
    "registry_url",
    "registry_user_env",
    "registry_password_env",
];

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

const LOCK_KEYS: &[&str] = &["name", "namespace", "ttl", "wait"];

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
