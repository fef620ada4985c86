"""Read settings from the environment: safe defaults, loud errors for bad values."""
from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit


class SettingError(Exception):
    """An environment variable holds a value the service cannot use."""


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, *, default: str | None = None) -> str | None:
    """Return the variable as text, or the default when unset or empty."""
    value = _raw(name)
    return default if value is None else value


def env_int(name: str, *, default: int, minimum: int | None = None) -> int:
    """Return the variable as an integer; fail naming it when it is not one."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise SettingError(f"{name} must be at least {minimum}, got {number}")
    return number


def env_float(name: str, *, default: float, minimum: float | None = None) -> float:
    """Return the variable as a number; fail naming it when it is not one."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingError(f"{name} must be a number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise SettingError(f"{name} must be at least {minimum}, got {number}")
    return number


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, *, default: bool) -> bool:
    """Return the variable as a boolean (1/0, true/false, yes/no, on/off)."""
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingError(f"{name} must be one of true/false, 1/0, yes/no, on/off, got {value!r}")


def env_list(name: str, *, default: list[str]) -> list[str]:
    """Return the variable as a comma-separated list."""
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_dirs(name: str, *, default: list[str]) -> tuple[str, ...]:
    """Return the variable as comma-separated absolute directory paths, resolved; fail naming a relative one."""
    directories = []
    for value in env_list(name, default=default):
        if not os.path.isabs(value):
            raise SettingError(f"{name}: {value!r} is not an absolute path")
        directories.append(os.path.realpath(value))
    return tuple(directories)


def env_url(name: str, *, schemes: tuple[str, ...], default: str | None = None) -> str | None:
    """Return the variable as a URL with one of the given schemes; fail naming it otherwise."""
    value = _raw(name)
    if value is None:
        return default
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it is what validates it
    except ValueError as error:
        raise SettingError(f"{name} is not a valid URL ({error}): {describe_url(value)!r}") from None
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{scheme}://" for scheme in schemes)
        raise SettingError(f"{name} must start with one of {allowed}, got {describe_url(value)!r}")
    if parts.scheme not in ("sqlite",) and not parts.hostname:
        raise SettingError(f"{name} has no host: {describe_url(value)!r}")
    return value


def describe_url(url: str) -> str:
    """Return the URL with any password replaced, fit for messages and logs."""
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def env_networks(name: str, *, default: list[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Return the variable as comma-separated networks (10.0.0.0/8) or addresses; fail naming the bad one."""
    networks = []
    for value in env_list(name, default=default):
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise SettingError(f"{name}: {value!r} is not a network (like 10.0.0.0/8) or an address") from None
    return tuple(networks)


def env_choice(name: str, *, default: str, choices: tuple[str, ...]) -> str:
    """Return the variable when it is one of the choices; fail naming them otherwise."""
    value = env_str(name, default=default).lower()
    if value not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
