"""The service's own keys when an operator sets none: made on first start, kept in the data directory.

The source once carried a secret key of its own; everyone can read it, so a key derived from it protects
nothing. Outside DEBUG the service refuses it. The embedded service (SQLite in the data directory) makes
its secret key and its credential key on first start instead, in files only their owner can read, and
reads them on every start after.
"""
from __future__ import annotations

import base64
import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from config.env import SettingError

# The key built into earlier versions: public, never to protect anything outside DEBUG.
BUILTIN_SECRET_KEY = "insecure-local-key-set-DJANGO_SECRET_KEY-in-production"
SECRET_KEY_FILE = "secret-key"
CREDENTIAL_KEY_FILE = "credential-key"


def secret_key_make() -> str:
    """Return a new random Django secret key."""
    return secrets.token_urlsafe(50)


def credential_key_make() -> str:
    """Return a new random Fernet key (32 url-safe base64-encoded bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def key_file_read_or_create(path: Path, *, make: Callable[[], str], setting: str) -> str:
    """Return the key stored at `path`, making it first, readable by its owner only, when there is none.

    Two processes starting at once (the web server and a command) end with the same key: the file
    appears whole or not at all (written aside, then linked in place, which fails when it exists).
    """
    if not path.exists():
        aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(make() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        except OSError as error:
            raise SettingError(
                f"{setting} is not set and its key could not be made in {path} ({error.strerror}): set "
                f"{setting}, or SYNC_DATA_DIR to a directory this user may write"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                aside.unlink()
    try:
        mode = path.stat().st_mode
        key = path.read_text().strip()
    except OSError as error:
        raise SettingError(f"{setting} is not set and its key file {path} cannot be read ({error.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingError(
            f"the key file {path} (used because {setting} is not set) may be read by other users "
            f"(mode {stat.S_IMODE(mode):o}): make it readable by its owner only (chmod 600)"
        )
    if not key:
        raise SettingError(f"the key file {path} (used because {setting} is not set) is empty")
    return key
