"""Encrypt every stored secret again with the newest key (`manage.py sync rekey`).

Sealing (syncapp.sealing) works on values; this is the service above the models that reads every
sealed field back and stores it again, so the newest key encrypts it.
"""
from __future__ import annotations

from django.db import transaction

from syncapp.models import Source
from syncapp.sealing import Unsealable


def secrets_reseal() -> int:
    """Encrypt every stored secret again with the newest key; return the number of sources.

    Raise Unsealable, changing nothing, when a stored secret cannot be decrypted with the keys.
    """
    with transaction.atomic():
        sources = list(Source.objects.select_for_update().only("pk", "reference", "credentials", "auth_token_cache"))
        for source in sources:
            for name in ("credentials", "auth_token_cache"):
                value = getattr(source, name)
                if isinstance(value, dict) and set(value) == {"unsealable"}:
                    raise Unsealable(f"source {source.reference!r}: {value['unsealable']}")
            Source.objects.filter(pk=source.pk).update(
                credentials=source.credentials, auth_token_cache=source.auth_token_cache
            )
    return len(sources)
