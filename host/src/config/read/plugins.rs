//! The `[plugins.NAME]` tables: source, configuration, grants, limits, events.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;
use toml::de::DeValue;

use super::{Reference, resolve, strings, unique};
use crate::config::error::Problem;
use crate::config::names::{NameRule, closest, quoted_list};
use crate::config::schema::{Plugin, PluginLimits, PluginSource};
use crate::config::section::{Section, Text, article, invalid_name};
pub(super) const PLUGIN_KEYS: &[&str] = &[
    "source",
    "config",
    "allow_hosts",
    "secrets",
    "limits",
    "events",
];

pub(super) fn read_plugins(
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
pub(super) fn read_source(
    section: &Section<'_, '_>,
    name: &str,
    dir: &Path,
) -> Result<PluginSource, Problem> {
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

pub(super) fn read_plugin(
    section: &Section<'_, '_>,
    name: &str,
    dir: &Path,
) -> Result<Plugin, Problem> {
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

pub(super) const LIMITS_KEYS: &[&str] = &["memory_mib", "cpu", "wall"];

/// `[plugins.NAME.limits]`, default when absent.
pub(super) fn read_limits(section: &Section<'_, '_>, name: &str) -> Result<PluginLimits, Problem> {
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
pub(super) fn event_kinds(
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

/// `[stage.plugin_config.NAME]` tables of a stage, by plugin name; each plugin named is a
/// reference to check.
pub(super) fn read_plugin_config(
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
