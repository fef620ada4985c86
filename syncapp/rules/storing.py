"""Files that belong to register objects, kept through Django's storage API (syncapp.models.StoredFile):
stored once per object and name, as OpenConnector's FileService keeps one file per name in an object's
folder, and written again only when their content changed."""
from __future__ import annotations

import hashlib
import mimetypes
from typing import IO, Any

from django.core.files import File
from django.db import transaction
from django.utils.text import get_valid_filename

from syncapp.models import Object, Rule, StoredFile

READ_SIZE = 1 << 16


def content_digest(handle: IO[bytes]) -> tuple[str, int]:
    """Return the SHA-256 and size of a file's content, read from its start."""
    digest = hashlib.sha256()
    size = 0
    handle.seek(0)
    while chunk := handle.read(READ_SIZE):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return digest.hexdigest(), size


def stored_file_find(*, obj: Object, source_url: str = "", name: str = "") -> StoredFile | None:
    """Return the stored file of an object fetched from this URL, or else of this name."""
    if source_url:
        found = StoredFile.objects.filter(object=obj, source_url=source_url).first()
        if found is not None:
            return found
    return StoredFile.objects.filter(object=obj, name=name).first() if name else None


def file_store(
    *, obj: Object, rule: Rule | None, name: str, content: IO[bytes], content_type: str = "",
    tags: list[str] | None = None, source_url: str = "", etag: str = "", last_modified: str = "",
) -> StoredFile:
    """Store a file with the object it belongs to (replacing the object's file of that name, or from that
    URL); its content is written only when it differs from what is stored."""
    name = (name or "file")[:255]
    sha256, size = content_digest(content)
    content_type = content_type or mimetypes.guess_type(name)[0] or ""
    existing = stored_file_find(obj=obj, source_url=source_url, name=name)
    clash = StoredFile.objects.filter(object=obj, name=name).exclude(
        pk=existing.pk if existing is not None else None
    ).first()
    if clash is not None:
        stored_file_delete(clash)  # another file of the object had this name: one file per name
    stored = existing or StoredFile(object=obj)
    old_path = stored.file.name if existing is not None else ""
    stored.rule, stored.name, stored.source_url = rule, name, source_url
    stored.content_type, stored.tags = content_type[:200], list(dict.fromkeys(tags or []))
    stored.etag, stored.last_modified = etag[:500], last_modified[:100]
    if existing is None or existing.sha256 != sha256 or not old_path:
        stored.sha256, stored.size = sha256, size
        stored.file.save(get_valid_filename(name) or "file", File(content), save=False)
        if old_path and old_path != stored.file.name:
            _content_delete_after_commit(stored.file.storage, old_path)
    stored.save()
    return stored


def stored_file_delete(stored: StoredFile) -> None:
    """Delete a stored file and its content."""
    if stored.file.name:
        _content_delete_after_commit(stored.file.storage, stored.file.name)
    stored.delete()


def _content_delete_after_commit(storage: Any, path: str) -> None:
    # A rolled-back object keeps the content its records still name; a new content written in a transaction
    # that rolls back is left unnamed, which costs space, never a file.
    transaction.on_commit(lambda: storage.delete(path))


def stored_files_keep_only(*, obj: Object, rule: Rule, kept: set[Any]) -> int:
    """Delete the files this rule stored with the object that are not among `kept` (their ids); return how many.

    OpenConnector removes an object's files that are no longer among its attachments
    (processMultipleFilesWithCleanup); here only those the same rule stored, so two rules keep theirs."""
    gone = StoredFile.objects.filter(object=obj, rule=rule).exclude(pk__in=kept)
    count = 0
    for stored in gone:
        stored_file_delete(stored)
        count += 1
    return count
