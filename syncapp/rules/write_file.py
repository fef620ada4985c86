"""`write_file` rules: the file contents the object holds at `filePath` are written as files of the register
object (OpenConnector's processWriteFileRule), and `filePath` gets their references.

At `filePath` the object holds a list of files, each an object with `content` (base64, or text),
`filename` (default `file_<n>`) and `label` (a tag when it is one of `tags`), or a single content whose
name is at `fileNamePath`. Every file gets the configured `tags` too. Where OpenConnector logs a file
that cannot be saved and writes null, the object fails here naming the file.
"""
from __future__ import annotations

import base64
import binascii
import copy
import io
from typing import Any

from syncapp.declared import Declared, DotPath
from syncapp.dotpath import MISSING, get_path, set_path
from syncapp.models import Rule
from syncapp.rules.base import Applied, Known, RuleFailed, RuleKind, object_of, rule_type, source_problems
from syncapp.rules.storing import file_store


class WriteFileRuleConfig(Declared):
    """configuration of a `write_file` rule."""

    file_path: DotPath
    """Dot path of the files in the object: a list of {content, filename, label}, or one content."""
    file_name_path: DotPath | None = None
    """Dot path of the name of a single file (default `default_file`)."""
    tags: list[str] | None = None
    """Tags of every file; a file's `label` among them is its tag too."""
    source: str | None = None
    """The source the files came from, by reference (OpenConnector names it; nothing is fetched)."""
    source_configuration: dict[str, Any] | list[Any] | None = None
    """Kept as OpenConnector writes it ([]): nothing is called."""


def _content(value: Any, *, where: str) -> io.BytesIO:
    """Return a file's content: base64 decoded when it is base64, else the text as UTF-8."""
    if isinstance(value, bytes):
        return io.BytesIO(value)
    if not isinstance(value, str):
        raise RuleFailed(f"{where}: content must be text (base64 or plain), got {type(value).__name__}")
    try:
        return io.BytesIO(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return io.BytesIO(value.encode())


@rule_type("write_file", label="Write file")
class WriteFileRule(RuleKind):
    declaration = WriteFileRuleConfig
    timings = (Rule.Timing.AFTER,)  # the files belong to the object written

    @staticmethod
    def config_problems(configuration: dict[str, Any], *, path: str, known: Known) -> list[str]:
        problems = source_problems(configuration.get("source"), path=f"{path}.source", known=known)
        settings = configuration.get("sourceConfiguration")
        if settings not in (None, [], {}):
            problems.append(f"{path}.sourceConfiguration: a write_file rule calls nothing; leave it empty")
        return problems

    def prepare(self, applied: Applied) -> dict[str, Any] | None:
        # It calls nothing; it changes the object at filePath only, with references not known before it stores.
        return applied.data

    def apply(self, applied: Applied) -> dict[str, Any]:
        config: WriteFileRuleConfig = self.config
        data = copy.deepcopy(applied.data)
        files = get_path(data, config.file_path)
        if files is MISSING or files in (None, "", [], {}):
            return data
        owner = object_of(applied.object_id) if applied.object_id else None
        if owner is None:
            raise RuleFailed("the files belong to no register object (write_file runs after the write of an object "
                             "of the register, or from one)")
        configured = list(config.tags or [])
        if isinstance(files, list) and files and isinstance(files[0], dict):
            references = []
            for index, value in enumerate(files):
                where = f"{config.file_path}[{index}]"
                if isinstance(value, dict):
                    if "content" not in value:
                        raise RuleFailed(f"{where}: has no content")
                    content = _content(value["content"], where=where)
                    name = str(value.get("filename") or f"file_{index}")
                    label = value.get("label")
                    tags = configured + ([label] if isinstance(label, str) and label in configured else [])
                else:
                    content, name, tags = _content(value, where=where), f"file_{index}", configured
                stored = file_store(obj=owner, rule=self.rule, name=name, content=content, tags=tags)
                references.append(stored.reference)
            shaped: Any = references
        else:
            name = get_path(data, config.file_name_path) if config.file_name_path else MISSING
            name = "default_file" if name is MISSING or not name else str(name)
            stored = file_store(obj=owner, rule=self.rule, name=name, content=_content(files, where=config.file_path),
                                tags=configured)
            shaped = stored.reference
        try:
            set_path(data, config.file_path, shaped)
        except ValueError as error:
            raise RuleFailed(f"filePath {config.file_path!r}: {error}") from None
        return data
