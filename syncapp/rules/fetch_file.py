"""`fetch_file` rules: the files the object names at `filePath` are fetched from a source and stored with
the register object they belong to (OpenConnector's processFetchFileRule, getFileContext and
processMultipleFilesWithCleanup).

At `filePath` the object holds one endpoint (a path on the source's location, or a URL), one object
with `endpoint`, `filename` and `label`/`labels`/`tag`/`tags`, or a list of either. The tags of a file
are its labels: all of them with `useLabelsAsTags` or with no tag setting, else those in
`allowedLabels`, else those in `tags`. A file is fetched conditionally when a version of it is stored
(If-None-Match, If-Modified-Since) and its content written again only when it changed. With a list,
the files the rule stored with the object before that are no longer listed are deleted.

Where OpenConnector fetches in the background and writes the placeholder `file://fetching-async` at
`filePath`, the files are fetched here within the object's unit of work and `filePath` gets each file's
reference (`/api/files/<uuid>/`, in the shape the endpoints had; `setPlaceholder: false` leaves it
as it was): before the write, in the object written; after it, in what the next rule sees (OpenConnector
writes nothing of an after rule's result), the files belonging to the object (`files` of the object in
the API). A file that cannot be had (an error answer, larger than SYNC_RULE_FILE_MAX_BYTES) fails the
object with its URL and the reason. The object the files belong to is the register object the synchronized
object is, after the write; before it (or per file) `objectIdPath` names it.

Where a transaction locks the whole database (SQLite), the files are downloaded before the chunk's
transaction, outside any (`prepare`, run on the object as the rules before this one will most likely
leave it), and only stored inside: a download would hold the write lock of every other writer as long as
the source takes. A file not downloaded then (what the rules before it left could not be foreseen, or
changed meanwhile) fails the object rather than be downloaded inside; the next run tries again.
"""
from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import BeforeValidator, JsonValue

from syncapp.declared import Declared, DotPath, Flag
from syncapp.dotpath import MISSING, get_path, set_path
from syncapp.errors import SourceError, SyncError
from syncapp.models import Object, Rule, Source, StoredFile
from syncapp.outbound.files import FetchedFile, file_address, file_fetch
from syncapp.rules.base import (
    Applied,
    Known,
    Prepared,
    RuleFailed,
    RuleKind,
    object_of,
    rule_type,
    source_of,
    source_problems,
)
from syncapp.rules.storing import file_store, stored_file_find, stored_files_keep_only

TAG_KEYS = ("label", "labels", "tag", "tags")


def _object_or_empty_list(value: Any) -> Any:
    # PHP writes an empty object as [] (OpenConnector's "sourceConfiguration": []).
    return {} if value == [] else value


ObjectOrEmpty = Annotated[dict[str, JsonValue], BeforeValidator(_object_or_empty_list)]


class FetchFileRuleConfig(Declared):
    """configuration of a `fetch_file` rule."""

    source: str
    """The HTTP source, by reference, the files are fetched from (its location, headers, credentials, budget)."""
    file_path: DotPath | None = None
    """Dot path of the files in the object: an endpoint or URL, an object with `endpoint`, or a list of them."""
    endpoint: str | None = None
    """The one file's endpoint, when there is no `filePath`."""
    method: Literal["GET", "POST"] = "GET"
    """How the file is asked for."""
    source_configuration: ObjectOrEmpty | None = None
    """Headers, query and timeouts of the calls, over the source's own (`body`: sent as JSON with POST);
    `{{ originId }}` in it is replaced by the value at `originIdPath`."""
    tags: list[str] | None = None
    """The labels that become tags (when neither useLabelsAsTags nor allowedLabels is set)."""
    allowed_labels: list[str] | None = None
    """The labels that become tags."""
    use_labels_as_tags: Flag = False
    """true: every label becomes a tag."""
    sub_object_filepath: DotPath | None = None
    """Dot path, in each file entry, of the part holding the endpoint (and filename, labels)."""
    object_id_path: DotPath | None = None
    """Dot path (in each file entry, else in the object) of the register object the file belongs to."""
    origin_id_path: DotPath | None = None
    """Dot path of the value that replaces `{{ originId }}` in sourceConfiguration."""
    set_placeholder: Flag = True
    """false: leave `filePath` as it was instead of writing the files' references there."""
    auto_share: Flag = False
    """Nextcloud's public share of the file: not done here, so only false is taken."""


def _labels(entry: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for key in TAG_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list):
            found += [item for item in value if isinstance(item, str) and item]
    return list(dict.fromkeys(found))


def _kind_of(value: Any) -> str:
    """Return OpenConnector's getArrayType of a value: single, object, list (or empty)."""
    if isinstance(value, dict):
        return "object" if value else "empty"
    if isinstance(value, list):
        return "list" if value else "empty"
    return "single"


@rule_type("fetch_file", label="Fetch file")
class FetchFileRule(RuleKind):
    declaration = FetchFileRuleConfig
    calls_out = True

    @staticmethod
    def config_problems(configuration: dict[str, Any], *, path: str, known: Known) -> list[str]:
        problems = source_problems(configuration.get("source"), path=f"{path}.source", known=known)
        if not configuration.get("filePath") and not configuration.get("endpoint"):
            problems.append(f"{path}: needs filePath (where the object names its files) or endpoint")
        if configuration.get("autoShare") in (True, "true", "1"):
            problems.append(f"{path}.autoShare: files are not shared publicly here; only false is taken")
        return problems

    def tags_of(self, labels: list[str]) -> list[str]:
        """Return which labels of a file become its tags, as OpenConnector's getFileContext decides."""
        config: FetchFileRuleConfig = self.config
        if config.use_labels_as_tags:
            return labels
        if config.allowed_labels:
            return [label for label in labels if label in config.allowed_labels]
        if config.tags:
            return [label for label in labels if label in config.tags]
        return labels

    def entry(self, value: Any) -> tuple[str | None, str | None, list[str], Any]:
        """Return a file entry's endpoint, filename, tags and the object it names (objectIdPath)."""
        config: FetchFileRuleConfig = self.config
        if not isinstance(value, dict):
            return (str(value) if value not in (None, "") else None), None, [], None
        object_id = get_path(value, config.object_id_path) if config.object_id_path else None
        inner = get_path(value, config.sub_object_filepath) if config.sub_object_filepath else value
        if inner is MISSING or inner in (None, ""):
            return None, None, [], object_id
        if not isinstance(inner, dict):
            return str(inner), None, [], object_id
        endpoint = inner.get("endpoint")
        filename = inner.get("filename") or None
        return (str(endpoint) if endpoint not in (None, "") else None, filename, self.tags_of(_labels(inner)),
                object_id)

    def asked(self, data: dict[str, Any], *, object_id: str | None) -> _Asked | None:
        """Return what the rule asks the source for, given the object as it stands; None when it names no file."""
        config: FetchFileRuleConfig = self.config
        named = get_path(data, config.file_path) if config.file_path else config.endpoint
        if named is MISSING or named is None:
            return None
        source = source_of(config.source)
        configuration = dict(config.source_configuration or {})
        if config.origin_id_path:
            origin_id = get_path(data, config.origin_id_path)
            if origin_id is not MISSING and origin_id is not None:
                configuration = json.loads(json.dumps(configuration).replace("{{ originId }}", str(origin_id)))
        body = configuration.pop("body", None)
        default_id: Any = object_id
        if default_id is None and config.object_id_path:
            found = get_path(data, config.object_id_path)
            default_id = None if found is MISSING else found
        kind = _kind_of(named)
        entries = [named] if kind in ("single", "object") else list(named) if kind == "list" else []
        return _Asked(kind=kind, entries=entries, source=source, configuration=configuration, body=body,
                      default_id=default_id)

    def request_key(self, *, asked: _Asked, endpoint: str, entry_id: Any) -> tuple[str, ...]:
        """Return what tells one request of the rule from another, for the step before the transaction."""
        return (
            file_address(source=asked.source, endpoint=endpoint), self.config.method,
            json.dumps(asked.configuration, sort_keys=True, default=str),
            json.dumps(asked.body, sort_keys=True, default=str),
            "" if entry_id in (None, MISSING) else str(entry_id),
        )

    def prepare(self, applied: Applied) -> dict[str, Any] | None:
        """Fetch the files the object names before its transaction, each into a file of `applied.prepared`
        (conditionally, against the version stored now), and what failed with the reason apply will give."""
        asked = self.asked(applied.data, object_id=applied.object_id)
        prepared = applied.prepared
        if asked is None or prepared is None:
            return applied.data
        for value in asked.entries:
            endpoint, _, _, entry_id = self.entry(value)
            if endpoint is None:
                continue
            owner = object_of(entry_id if entry_id not in (None, MISSING) else asked.default_id)
            if owner is None and (applied.timing != Rule.Timing.AFTER or applied.object_id is not None):
                continue  # apply fails the object: the file belongs to no register object
            # None: a new object, written before the rules timed after it run, has no version of the file yet.
            key = self.request_key(asked=asked, endpoint=endpoint, entry_id=entry_id)
            if prepared.get(rule=self.rule, key=key) is not None:
                continue
            known = stored_file_find(obj=owner, source_url=key[0]) if owner is not None else None
            etag, last_modified = (known.etag, known.last_modified) if known is not None else ("", "")
            path = prepared.spool()
            try:
                with path.open("w+b") as sink:
                    fetched = self.fetch(source=asked.source, endpoint=endpoint, configuration=asked.configuration,
                                         body=asked.body, known=known, sink=sink)
            except SyncError as error:  # met again, as it was, when the rule is applied
                prepared.put(rule=self.rule, key=key, result=_Download(etag=etag, last_modified=last_modified,
                                                                       failure=error))
                continue
            prepared.put(rule=self.rule, key=key, result=_Download(etag=etag, last_modified=last_modified,
                                                                   fetched=fetched, path=path))
        # As apply leaves it but for the references at filePath, which are not known before the files are stored.
        return applied.data

    def apply(self, applied: Applied) -> dict[str, Any]:
        config: FetchFileRuleConfig = self.config
        data = copy.deepcopy(applied.data)
        asked = self.asked(data, object_id=applied.object_id)
        if asked is None:
            return data
        kind, default_id = asked.kind, asked.default_id
        references: list[str | None] = []
        kept: dict[int, set[Any]] = {}
        owners: dict[int, Object] = {}
        for value in asked.entries:
            endpoint, filename, tags, entry_id = self.entry(value)
            if endpoint is None:
                references.append(None)
                continue
            owner = object_of(entry_id if entry_id not in (None, MISSING) else default_id)
            if owner is None:
                raise RuleFailed(
                    f"the file at {endpoint!r} belongs to no register object: the object is not in the register "
                    f"yet (timing before the write of a new object) and objectIdPath names none"
                )
            stored = self.fetch_one(asked=asked, endpoint=endpoint, filename=filename, tags=tags, owner=owner,
                                    key=self.request_key(asked=asked, endpoint=endpoint, entry_id=entry_id),
                                    prepared=applied.prepared)
            owners[owner.pk] = owner
            kept.setdefault(owner.pk, set()).add(stored.pk)
            references.append(stored.reference)
        if kind in ("list", "empty"):
            owner = object_of(default_id) if default_id is not None else None
            if owner is not None:
                owners.setdefault(owner.pk, owner)
            for pk, owner in owners.items():
                stored_files_keep_only(obj=owner, rule=self.rule, kept=kept.get(pk, set()))
        if config.set_placeholder and config.file_path:
            shaped: Any = references if kind in ("list", "empty") else references[0] if references else None
            try:
                set_path(data, config.file_path, shaped)
            except ValueError as error:
                raise RuleFailed(f"filePath {config.file_path!r}: {error}") from None
        return data

    def fetch(self, *, source: Source, endpoint: str, configuration: dict[str, Any], body: Any,
              known: StoredFile | None, sink: BinaryIO) -> FetchedFile:
        """Fetch one file into `sink`, conditionally when a version of it is stored; raise RuleFailed naming it."""
        try:
            return file_fetch(
                source=source, endpoint=endpoint, sink=sink, method=self.config.method, configuration=configuration,
                body=body, etag=known.etag if known else "", last_modified=known.last_modified if known else "",
            )
        except SourceError as error:
            raise RuleFailed(f"file {endpoint!r}: {error}") from None

    def fetch_one(self, *, asked: _Asked, endpoint: str, filename: str | None, tags: list[str], owner: Object,
                  key: tuple[str, ...], prepared: Prepared | None) -> StoredFile:
        """Store one file with its object (unless the stored version is current): fetched now, or before the
        transaction when the rules' steps before it ran (`prepared`)."""
        known = stored_file_find(obj=owner, source_url=key[0])
        if prepared is None:
            with tempfile.TemporaryFile() as sink:
                fetched = self.fetch(source=asked.source, endpoint=endpoint, configuration=asked.configuration,
                                     body=asked.body, known=known, sink=sink)
                return self.keep(fetched=fetched, content=sink, known=known, owner=owner, filename=filename,
                                 tags=tags)
        download = prepared.get(rule=self.rule, key=key)
        if download is None or not download.answers(known):
            # Fetched here, it would hold the write lock of the whole database (SQLite) as long as the source takes.
            raise RuleFailed(
                f"file {endpoint!r} was not fetched before the object's transaction, and no file is fetched inside "
                "one where it locks the whole database (SQLite): what this rule was given could not be foreseen "
                "then (a rule before it that writes, such as save_object, or a change meanwhile); the next run "
                "tries again"
            )
        if download.failure is not None:
            raise download.failure
        with download.path.open("rb") as content:
            return self.keep(fetched=download.fetched, content=content, known=known, owner=owner, filename=filename,
                             tags=tags)

    def keep(self, *, fetched: FetchedFile, content: BinaryIO, known: StoredFile | None, owner: Object,
             filename: str | None, tags: list[str]) -> StoredFile:
        """Store a fetched file with its object, or only its tags when it was not modified since the version known."""
        if fetched.not_modified and known is not None:
            if sorted(known.tags) != sorted(tags):
                known.tags = list(tags)
                known.save(update_fields=["tags", "updated_at"])
            return known
        name = filename or _filename_from(fetched.headers, fetched.final_url)
        return file_store(
            obj=owner, rule=self.rule, name=name, content=content,
            content_type=(fetched.headers.get("Content-Type") or "").split(";")[0].strip(), tags=tags,
            source_url=fetched.url, etag=fetched.headers.get("ETag") or "",
            last_modified=fetched.headers.get("Last-Modified") or "",
        )


@dataclass(frozen=True)
class _Asked:
    """What a rule asks the source for, given an object: its file entries and how they are asked for."""

    kind: str  # of what filePath holds (_kind_of)
    entries: list[Any]
    source: Source
    configuration: dict[str, Any]
    body: Any
    default_id: Any  # the register object the files belong to, unless an entry names its own


@dataclass(frozen=True)
class _Download:
    """A file fetched before the object's transaction (RuleKind.prepare), or why it could not be."""

    etag: str  # of the stored version it was asked against
    last_modified: str
    fetched: FetchedFile | None = None
    path: Path | None = None
    failure: SyncError | None = None

    def answers(self, known: StoredFile | None) -> bool:
        """Return whether it answers for the version stored now: "not modified" is of the version asked against."""
        if self.fetched is None or not self.fetched.not_modified:
            return True
        return known is not None and (known.etag, known.last_modified) == (self.etag, self.last_modified)


def _filename_from(headers: dict[str, str], url: str) -> str:
    """Return a file's name as OpenConnector's getFilenameFromHeaders finds it: Content-Disposition's
    filename, else the URL's last segment, with the content type's subtype as extension when it has none."""
    disposition = next((value for name, value in headers.items() if name.lower() == "content-disposition"), "")
    if "filename" in disposition:
        return disposition.split("=", 1)[1].split(";")[0].strip().strip('"') or "file"
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "file"
    content_type = next((value for key, value in headers.items() if key.lower() == "content-type"), "")
    if "." not in name and content_type:
        name = f"{name}.{content_type.split(';')[0].strip().rsplit('/', 1)[-1]}"
    return name

