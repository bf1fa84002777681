"""The plugin's configuration values and granted secrets, read from the host."""

from . import _host
from .errors import ConfigError


def config(key):
    """The value of configuration key `key` (`[plugins.NAME.config]` in `tagship.toml` or
    `--config KEY=VALUE`), placeholders such as `{{stage}}` already substituted; None when unset."""
    return _host.current().config(key)


def config_or(key, default):
    """The value of `key`, or `default` when it is not set or blank."""
    value = config(key)
    if value is None or not value.strip():
        return default
    return value


def require_config(key):
    """The value of `key`; raises `ConfigError` naming the key when it is not set or blank:
    ``missing config key `url`: set it under [plugins.NAME.config]``."""
    value = config(key)
    if value is None or not value.strip():
        raise ConfigError(f"missing config key `{key}`: set it under [plugins.NAME.config]")
    return value


def secret(name):
    """The value of secret `name` when the operator granted it and it is set, else None. Never
    log it or put it into a result: the host redacts it, but a plugin must not try."""
    value = _host.current().secret(name)
    return value if value else None


def require_secret(name):
    """The value of secret `name`; raises `ConfigError` telling how to grant it when missing."""
    value = secret(name)
    if value is None:
        raise ConfigError(
            f"secret `{name}` is not granted or not set: grant it with `secrets = [\"{name}\"]` "
            f"under [plugins.NAME] (or `--secret {name}`) and set it in the runner's environment"
        )
    return value
