"""Model fields of the service."""
from __future__ import annotations

from typing import Any

import orjson
from django.db import models

from syncapp.sealing import Unsealable, seal, unseal


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class DocumentField(models.JSONField):
    """A JSON column for documents written in bulk: objects and what logs keep of them.

    Encoded with orjson, and inserted in bulk as one literal a row rather than as arrays (Django's
    UNNEST insert), whose quoting costs more than the write for documents of a few hundred bytes.
    """

    def get_placeholder(self, value: Any, compiler: Any, connection: Any) -> str:
        return "%s"

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if self.encoder is not None or value is None and not self.null:
            return super().get_db_prep_value(value, connection, prepared=True)
        if connection.vendor == "postgresql":
            from psycopg.types.json import Jsonb

            return Jsonb(value, dumps=_dumps)
        return _dumps(value)


class SealedJSONField(models.TextField):
    """A JSON value stored encrypted with the credential keys (syncapp.sealing), decrypted when read.

    A value no key decrypts reads as {"unsealable": message}: the source's calls fail with that message,
    while its configuration can still be shown and its credentials set again.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return None if value is None else self._unseal(value)

    def to_python(self, value: Any) -> Any:
        return self._unseal(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        return None if value is None else seal(value)

    @staticmethod
    def _unseal(value: str) -> Any:
        try:
            return unseal(value)
        except Unsealable as error:
            return {"unsealable": str(error)}
