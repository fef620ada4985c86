"""API tokens stored as digests: made with a key shown once, checked by the digest of the key presented.

A token is 160 random bits, so an unsalted SHA-256 digest cannot be turned back into it, and looking a
token up by its digest needs no comparison of secrets in Python. Reading the table (a backup, a database
source, a leaked dump) gives no key that authenticates.
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from syncapp.models import ApiToken


def token_digest(key: str) -> str:
    """Return the digest stored for a token's key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
    """Make a token for a user; return it and its key, which nothing stores: show it to the user now."""
    key = secrets.token_hex(20)
    return ApiToken.objects.create(user=user, name=name, digest=token_digest(key)), key


class DigestTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, checked against the stored digests (REST_FRAMEWORK in config/settings.py)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiToken]:
        token = ApiToken.objects.select_related("user").filter(digest=token_digest(key)).first()
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return token.user, token
