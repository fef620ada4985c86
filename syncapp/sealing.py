"""Secrets at rest: credentials and cached tokens are stored encrypted (Fernet), decrypted when read.

The keys come from SYNC_CREDENTIAL_KEYS, newest first: the newest encrypts, every one decrypts, so a
key is rotated by putting a new one in front and running `manage.py sync rekey`, which encrypts every
stored secret again with it; then the old key can go. The embedded service makes a key of its own on
first start (config/keys.py). Without keys, one is derived from the Django secret key, and the service
says so when it starts.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import logging
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from config.keys import BUILTIN_SECRET_KEY
from syncapp.errors import SyncError

logger = logging.getLogger(__name__)


class Unsealable(SyncError, ValueError):
    """A stored secret that none of the configured keys decrypts."""


def key_derived(secret_key: str) -> str:
    """Return a Fernet key derived from the Django secret key."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"sync-credentials:" + secret_key.encode()).digest()).decode()


def key_problem(key: str) -> str | None:
    """Return why a text is not a Fernet key (32 url-safe base64 bytes), or None."""
    try:
        Fernet(key)
    except (ValueError, TypeError):
        return "is not a Fernet key (32 url-safe base64-encoded bytes; make one with `manage.py sync keygen`)"
    return None


def keys() -> tuple[str, ...]:
    """Return the keys in use, newest first: the first encrypts, all decrypt.

    With SYNC_CREDENTIAL_KEYS (set, or made by the embedded service), the keys derived from the secret
    key and from the public built-in one come last: secrets sealed before keys were set still decrypt,
    and `sync rekey` seals them with the newest key.
    """
    configured = tuple(settings.SYNC_CREDENTIAL_KEYS)
    derived = (key_derived(settings.SECRET_KEY), key_derived(BUILTIN_SECRET_KEY))
    return tuple(dict.fromkeys(configured + derived)) if configured else derived[:1]


@functools.lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def seal(value: Any) -> str:
    """Return a JSON value encrypted with the newest key."""
    return _fernet(keys()).encrypt(orjson.dumps(value)).decode()


def unseal(token: str) -> Any:
    """Return the JSON value of an encrypted text; raise Unsealable when no key decrypts it.

    A value stored before secrets were sealed (plain JSON) is read as it is; `sync rekey` seals it.
    """
    if token.lstrip().startswith(("{", "[", '"')):
        return orjson.loads(token)
    try:
        return orjson.loads(_fernet(keys()).decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise Unsealable(
            "a stored secret cannot be decrypted with SYNC_CREDENTIAL_KEYS: was the key that encrypted it "
            "removed? Put it back (after the new one), or set the credentials again"
        ) from None


def key_generate() -> str:
    """Return a new random key."""
    return Fernet.generate_key().decode()


def keys_announce() -> None:
    """Say at start when secrets are encrypted with a key derived from the Django secret key."""
    if not settings.SYNC_CREDENTIAL_KEYS:
        logger.warning(
            "SYNC_CREDENTIAL_KEYS is not set: credentials are encrypted with a key derived from "
            "DJANGO_SECRET_KEY. Set SYNC_CREDENTIAL_KEYS (`manage.py sync keygen` makes a key) so that "
            "changing the secret key does not lose them."
        )


