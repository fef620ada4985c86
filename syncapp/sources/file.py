"""Read a file source: a CSV, NDJSON or JSON file, read a page at a time so no file sits in memory whole.

Where the file is (the Source, type `file`):

- uploaded with the source (`Source.file`, kept in the default storage: SYNC_MEDIA_ROOT or a bucket);
- at an http:// or https:// URL, the source's `location`, fetched through syncapp.http: the egress
  policy, the source's credentials and headers (`configuration`, then `sourceConfig`), rate limits
  and retries, at most SYNC_FILE_MAX_BYTES within SYNC_FILE_DOWNLOAD_TIMEOUT;
- a local path, the source's `location`, inside one of SYNC_FILE_ALLOWED_DIRS (none by default):
  no other path is read, also not through a symbolic link or `..`.

How it is read (the synchronization's `sourceConfig`):

    {"format": "csv", "delimiter": ";", "quotechar": "\\"", "encoding": "utf-8", "header": true,
     "columns": ["id", "name"], "objectsPath": "data.items", "idPath": "id", "pageSize": 1000}

`format` is json (a list at the top, or at the dot path `objectsPath`), ndjson (one JSON value a line)
or csv; by default the file name says (.json, .ndjson or .jsonl, .csv, .tsv). CSV values stay text: a
mapping's `cast` makes numbers of them. `header` (default true) takes the column names from the first
record; `columns` names them instead (with `header` true the first record is skipped). `encoding`
(default utf-8, a byte-order mark is skipped) must write the delimiters and line ends as ASCII does.

Pages: a page request holds where the page starts in the file, as a byte offset (for JSON, just
after the element before, found by a scanner that follows strings and nesting and hands each element
to orjson), with the line and record number there and, for CSV, the column names read from the
header. A page costs the same wherever it lies, and only one page of records is in memory. The page
record stores the page's records, never the file.

A file at a URL is downloaded once per run, by the task of the first page, into file-sources/downloads/
of the default storage, where uploads live (the media root, a directory every worker must then share:
docker-compose.yml mounts one volume in web and worker; or an S3-compatible bucket, SYNC_S3_BUCKET); the
following pages read that copy wherever their task runs, and the last page removes it. Each page request
carries the copy's SHA-256: a worker that does not find it (on a machine without the shared volume, or
after a restart removed it) downloads the file again and reads on only when it is the same file, else
the page fails ("changed during the run"). So a run reads one version of the file, and never downloads
it per page; HTTP Range requests were not used, because many servers ignore them and a file replaced
between two ranges would mix two versions silently. An upload replaced during a run is stored under a
new name, so the run reads on in the one it began with; a local file is held to its size and
modification time.

Garbage (a line that is not JSON, a CSV record with the wrong number of fields, bytes that are not
text in the encoding) fails the page with an error naming the file, the line and record, and what is
wrong: the run ends failed and deletes nothing, and what earlier runs stored stays as it was.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal
from urllib.parse import urlsplit

import orjson
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from syncapp.authentication import CredentialsError, authenticator_for
from syncapp.budget import PageBudget
from syncapp.egress import location_problems as url_location_problems
from syncapp.errors import SourceError
from syncapp.hashing import hash_value
from syncapp.http import BodyLimits, OnWait, http_request
from syncapp.models import Source, Synchronization
from syncapp.outbound.calls import call_settings, configuration_problems, source_config_problems, source_errors
from syncapp.outbound.masking import mask_url
from syncapp.outbound.masking import snippet as redacted_snippet
from syncapp.sources.base import Fetched, ReaderKind, ReadPage, reader_type, source_record_check
from syncapp.sources.declarations import CallOptions, HttpSourceConfiguration, RunSettings

logger = logging.getLogger(__name__)

FORMATS = ("json", "ndjson", "csv")
SUFFIX_FORMATS = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv", ".tsv": "csv"}
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
READ_SIZE = 256 * 1024
DOWNLOADS = "file-sources/downloads"
# A copy left by a run that never reached its last page is removed by a later download after this long.
DOWNLOAD_KEEP_SECONDS = 2 * 86400
BOM = codecs.BOM_UTF8


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class FileOptions:
    """How a synchronization reads its file."""

    format: str | None  # None: from the file name
    delimiter: str | None  # None: "," (a tab for .tsv)
    quotechar: str
    encoding: str
    header: bool
    columns: tuple[str, ...] | None
    objects_path: tuple[str, ...]
    page_size: int


def _ascii_compatible(encoding: str) -> bool:
    """Return whether the encoding writes line ends, delimiters and quotes as ASCII does (UTF-16 does not)."""
    probe = "\n\r,;|\t\"' {}[]:"
    try:
        return probe.encode(encoding) == probe.encode("ascii") and b"\n".decode(encoding) == "\n"
    except (LookupError, UnicodeError):
        return False


def file_source_config_problems(config: Any, *, path: str = "sourceConfig") -> list[str]:
    """Return the problems of a file synchronization's sourceConfig, each with its path."""
    if not isinstance(config, dict):
        return [f"{path}: must be an object"]
    problems = []
    if config.get("incremental"):
        # A file is read whole every run; an "incremental" run would only stop deletions, silently.
        problems.append(f"{path}.incremental: a file source reads the whole file each run; leave it out (unchanged "
                        "rows are found unchanged by their hashes)")
    kind = config.get("format")
    if kind is not None and kind not in FORMATS:
        problems.append(f"{path}.format: must be one of {', '.join(FORMATS)}, got {kind!r}")
    for key, default in (("delimiter", ","), ("quotechar", '"')):
        value = config.get(key, default)
        if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
            problems.append(f"{path}.{key}: must be one character (not a line end), got {value!r}")
    if (
        isinstance(config.get("delimiter"), str) and config.get("delimiter") == config.get("quotechar", '"')
    ):
        problems.append(f"{path}.quotechar: must differ from the delimiter")
    encoding = config.get("encoding", "utf-8")
    if not isinstance(encoding, str):
        problems.append(f"{path}.encoding: must be the name of an encoding, got {encoding!r}")
    else:
        try:
            codecs.lookup(encoding)
        except LookupError:
            problems.append(f"{path}.encoding: {encoding!r} is not an encoding Python knows")
        else:
            if not _ascii_compatible(encoding):
                problems.append(
                    f"{path}.encoding: {encoding!r} does not write line ends and delimiters as ASCII does (UTF-16 "
                    "and UTF-32 cannot be read a page at a time): convert the file to UTF-8"
                )
            elif kind == "json" and codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
                problems.append(f"{path}.encoding: a JSON file is read as UTF-8, got {encoding!r}")
    header = config.get("header", True)
    if not isinstance(header, bool):
        problems.append(f"{path}.header: must be true or false, got {header!r}")
    columns = config.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
            problems.append(f"{path}.columns: must be a list of column names (non-empty text)")
        elif len(set(columns)) != len(columns):
            twice = sorted({c for c in columns if columns.count(c) > 1})
            problems.append(f"{path}.columns: {', '.join(map(repr, twice))} named more than once")
    if header is False and columns is None and (kind == "csv"):
        problems.append(f"{path}.columns: a CSV file without a header row needs its column names in columns")
    for key in ("objectsPath", "idPath"):
        value = config.get(key)
        if value is not None and (not isinstance(value, str) or (key == "idPath" and not value)):
            problems.append(f"{path}.{key}: must be text (a dot path), got {value!r}")
    size = config.get("pageSize", DEFAULT_PAGE_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        problems.append(f"{path}.pageSize: must be a whole number from 1 to {MAX_PAGE_SIZE}, got {size!r}")
    return problems


def file_options(config: dict[str, Any]) -> FileOptions:
    """Return the reading options of a sourceConfig; raise SourceError naming every problem."""
    problems = file_source_config_problems(config)
    if problems:
        raise SourceError("; ".join(problems))
    columns = config.get("columns")
    objects_path = config.get("objectsPath") or ""
    return FileOptions(
        format=config.get("format"), delimiter=config.get("delimiter"), quotechar=config.get("quotechar", '"'),
        encoding=codecs.lookup(config.get("encoding", "utf-8")).name, header=config.get("header", True),
        columns=tuple(columns) if columns else None,
        objects_path=tuple(part for part in objects_path.split(".") if part),
        page_size=config.get("pageSize", DEFAULT_PAGE_SIZE),
    )


def is_url(location: str) -> bool:
    return location.strip().lower().startswith(("http://", "https://"))


def allowed_path(location: str) -> Path:
    """Return the real path of a local file location; raise SourceError unless it lies in an allowed directory."""
    allowed = settings.SYNC_FILE_ALLOWED_DIRS
    if not allowed:
        raise SourceError(
            f"{location!r} is a local path, and no directory is allowed (SYNC_FILE_ALLOWED_DIRS is empty): "
            "upload the file, or give its http(s) URL"
        )
    if location.startswith("file://"):
        location = location.removeprefix("file://")
    path = Path(location)
    if not path.is_absolute():
        raise SourceError(f"{location!r} is not an absolute path")
    # The real path, links and `..` resolved: a link inside an allowed directory may point anywhere.
    real = Path(os.path.realpath(path))
    for directory in allowed:
        if real.is_relative_to(Path(os.path.realpath(directory))):
            return real
    raise SourceError(f"{location!r} is outside the directories file sources may read (SYNC_FILE_ALLOWED_DIRS)")


def file_location_problems(location: Any, *, has_upload: bool, path: str = "location") -> list[str]:
    """Return the problems of a file source's location as saved: a URL the policy allows, an allowed
    path, or blank with an uploaded file."""
    if location is None or (isinstance(location, str) and not location.strip()):
        return [] if has_upload else [f"{path}: a file source needs an uploaded file, or its URL or path here"]
    if not isinstance(location, str):
        return [f"{path}: must be text"]
    if is_url(location):
        return url_location_problems(location.strip(), path=path).copy()
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location) and not location.startswith("file://"):
        return [f"{path}: a file source reads http(s) URLs and local paths, not {location.split('://')[0]}://"]
    try:
        allowed_path(location.strip())
    except SourceError as error:
        return [f"{path}: {error}"]
    return []


@source_record_check(
    "file", label="File", configuration=HttpSourceConfiguration, configuration_check=configuration_problems,
)
def file_source_problems(*, location: Any, credentials: Any, has_upload: bool, path: str) -> list[str]:
    """Return the problems of a file source as saved: an allowed URL or path, or an uploaded file."""
    return file_location_problems(location, has_upload=has_upload, path=f"{path}location")


def upload_problems(*, upload: Any, kind: str) -> list[str]:
    """Return the problems of a file uploaded with a source: only a file source takes one, within the size limit."""
    if not upload:
        return []
    if kind != "file":
        return [f"only a source of type file takes an uploaded file, not one of type {kind}"]
    size = getattr(upload, "size", 0) or 0
    if size > settings.SYNC_FILE_MAX_BYTES:
        return [f"the file has {size:,} bytes, more than {settings.SYNC_FILE_MAX_BYTES:,} (SYNC_FILE_MAX_BYTES)"]
    return []


def format_of(name: str, options: FileOptions) -> str:
    """Return the format of a file: as configured, else by the suffix of its name."""
    if options.format:
        return options.format
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffix]
    raise SourceError(
        f"{name}: the format cannot be told from the name (.json, .ndjson, .jsonl, .csv, .tsv): set "
        "sourceConfig.format to json, ndjson or csv"
    )


# ---------------------------------------------------------------------------------------------
# Errors and decoding


def _decoded(raw: bytes, *, encoding: str, name: str, line: int) -> str:
    if b"\x00" in raw:
        raise SourceError(
            f"{name}, line {line}: holds a NUL byte, which no text value may hold (a UTF-16 file? convert it to UTF-8)"
        )
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise SourceError(
            f"{name}, line {line}: not valid {encoding} text (byte {raw[error.start:error.start + 1]!r} at "
            f"position {error.start + 1} of the line); set sourceConfig.encoding"
        ) from None


def _readline(handle: IO[bytes], *, name: str, line: int) -> bytes:
    limit = settings.SYNC_FILE_MAX_RECORD_BYTES
    raw = handle.readline(limit + 1)
    if len(raw) > limit:
        raise SourceError(f"{name}, line {line}: longer than {limit:,} bytes (SYNC_FILE_MAX_RECORD_BYTES)")
    return raw


@dataclass
class PageOut:
    rows: list[Any]
    offset: int
    line: int
    row: int
    done: bool
    columns: list[str] | None = None


# ---------------------------------------------------------------------------------------------
# NDJSON


def ndjson_page(handle: IO[bytes], *, request: dict[str, Any], options: FileOptions, name: str,
                size: int) -> PageOut:
    """Read one page of an NDJSON file from the request's offset: one JSON value a line, blank lines skipped."""
    offset, line, row = request["offset"], request["line"], request["row"]
    handle.seek(offset)
    rows: list[Any] = []
    budget = PageBudget(where=name)
    while len(rows) < options.page_size:
        raw = _readline(handle, name=name, line=line)
        if not raw:
            break
        budget.add(len(raw), what=f"line {line}")
        if offset == 0 and raw.startswith(BOM) and options.encoding.startswith("utf-8"):
            raw = raw[len(BOM):]
            offset += len(BOM)
        offset += len(raw)
        text = _decoded(raw, encoding=options.encoding, name=name, line=line).strip()
        if text:
            try:
                rows.append(orjson.loads(text))
            except orjson.JSONDecodeError as error:
                raise SourceError(f"{name}, line {line} (record {row + 1}): not valid JSON ({error})") from None
            row += 1
        line += 1
    return PageOut(rows=rows, offset=offset, line=line, row=row, done=offset >= size)


# ---------------------------------------------------------------------------------------------
# CSV


class _Lines:
    """The decoded lines of a file from an offset, for the csv module; keeps the offset and line number of
    what it has handed out, so after each record it names the exact start of the next."""

    def __init__(self, handle: IO[bytes], *, offset: int, line: int, encoding: str, name: str):
        self.handle, self.offset, self.line, self.encoding, self.name = handle, offset, line, encoding, name
        handle.seek(offset)
        # A quoted field may span lines: a record is counted from its first line, the page from its first record.
        self.record_offset, self.record_line = offset, line
        self.budget = PageBudget(where=name)

    def record_begin(self) -> None:
        """Say that the next line handed out begins a record."""
        self.record_offset, self.record_line = self.offset, self.line

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = _readline(self.handle, name=self.name, line=self.line)
        if not raw:
            raise StopIteration
        if self.offset == 0 and raw.startswith(BOM) and self.encoding.startswith("utf-8"):
            raw = raw[len(BOM):]
            self.offset += len(BOM)
        limit = settings.SYNC_FILE_MAX_RECORD_BYTES
        if self.offset + len(raw) - self.record_offset > limit:
            raise SourceError(f"{self.name}, line {self.record_line}: a record longer than {limit:,} bytes "
                              "(SYNC_FILE_MAX_RECORD_BYTES)")
        self.budget.add(len(raw), what=f"line {self.line}")
        text = _decoded(raw, encoding=self.encoding, name=self.name, line=self.line)
        self.offset += len(raw)
        self.line += 1
        return text


def _header_check(columns: list[str], *, name: str, line: int) -> list[str]:
    columns = [column.strip() for column in columns]
    for number, column in enumerate(columns, start=1):
        if not column:
            raise SourceError(f"{name}, line {line}: the header's column {number} has no name; name it, or set "
                              "sourceConfig.columns")
    twice = sorted({column for column in columns if columns.count(column) > 1})
    if twice:
        raise SourceError(f"{name}, line {line}: the header names {', '.join(map(repr, twice))} more than once")
    return columns


def csv_page(handle: IO[bytes], *, request: dict[str, Any], options: FileOptions, name: str, size: int,
             delimiter: str) -> PageOut:
    """Read one page of a CSV file from the request's offset; the column names come with the request."""
    # A field may be as long as a record (the csv module's own limit is 128 KiB; it is per process).
    csv.field_size_limit(max(csv.field_size_limit(), settings.SYNC_FILE_MAX_RECORD_BYTES))
    lines = _Lines(handle, offset=request["offset"], line=request["line"], encoding=options.encoding, name=name)
    records = csv.reader(lines, delimiter=delimiter, quotechar=options.quotechar, strict=True)
    columns: list[str] | None = request.get("columns") or (list(options.columns) if options.columns else None)
    header_pending = request["offset"] == 0 and options.header
    row = request["row"]
    rows: list[dict[str, str]] = []
    while len(rows) < options.page_size:
        start = lines.line
        lines.record_begin()
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error as error:
            raise SourceError(f"{name}, line {start}: not valid CSV ({error})") from None
        if not record:
            continue  # a blank line
        if header_pending:
            header_pending = False
            header = _header_check(record, name=name, line=start)
            if columns is None:
                columns = header
            continue
        if columns is None:  # checked with the settings; a request from before them
            raise SourceError(f"{name}: no column names: set sourceConfig.columns, or header true")
        row += 1
        if len(record) != len(columns):
            raise SourceError(
                f"{name}, line {start} (record {row}): {len(record)} field{'s' if len(record) != 1 else ''}, "
                f"the header has {len(columns)} ({', '.join(columns[:8])}{', ...' if len(columns) > 8 else ''})"
            )
        rows.append(dict(zip(columns, record, strict=True)))
    return PageOut(rows=rows, offset=lines.offset, line=lines.line, row=row, done=lines.offset >= size,
                   columns=columns)


# ---------------------------------------------------------------------------------------------
# JSON


_STRUCTURE = re.compile(rb'[\[\]{}"]')
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)  # from just after the opening quote
_SCALAR_END = re.compile(rb'[\s,\]}\[{"]')
_SPACE = re.compile(rb"[ \t\r\n]*")


class JsonScanner:
    """Walk a JSON file's structure from a byte offset, a buffer at a time: whitespace, punctuation and
    whole values, whose bytes orjson then parses. Follows strings (with their escapes) and nesting, so
    a page ends exactly after an element and the next starts there; lines are counted on the way.

    A value kept (a list element, a key) must fit in SYNC_FILE_MAX_RECORD_BYTES; a value passed over
    (another key's, on the way to objectsPath) may be of any size: its bytes are dropped as it is read.
    """

    def __init__(self, handle: IO[bytes], *, offset: int, line: int, name: str):
        self.handle, self.name, self.line = handle, name, line
        handle.seek(offset)
        self.base = offset  # the file offset of buf[0]
        self.buf = bytearray()
        self.pos = 0  # where reading stands; lines are counted up to here
        self.limit = settings.SYNC_FILE_MAX_RECORD_BYTES

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _fill(self, *, keep_from: int) -> tuple[int, bool]:
        """Drop the bytes before `keep_from` (at or after pos) and read more; return how far indices moved
        and whether anything was read."""
        self.line += self.buf.count(b"\n", self.pos, keep_from)
        del self.buf[:keep_from]
        self.base += keep_from
        self.pos = 0
        if len(self.buf) > self.limit:
            raise SourceError(f"{self.name}, line {self.line}: an element is larger than {self.limit:,} bytes "
                              "(SYNC_FILE_MAX_RECORD_BYTES)")
        chunk = self.handle.read(max(READ_SIZE, len(self.buf)))
        self.buf += chunk
        return keep_from, bool(chunk)

    def _advance(self, to: int) -> None:
        self.line += self.buf.count(b"\n", self.pos, to)
        self.pos = to
        if self.pos > READ_SIZE:
            del self.buf[:self.pos]
            self.base += self.pos
            self.pos = 0

    def _broken(self, what: str) -> SourceError:
        return SourceError(f"{self.name}, line {self.line}: not valid JSON: {what}")

    def peek(self) -> int | None:
        """Skip whitespace; return the next byte, or None at the end of the file."""
        while True:
            self._advance(_SPACE.match(self.buf, self.pos).end())
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            _, more = self._fill(keep_from=self.pos)
            if not more:
                return None

    def expect(self, char: bytes, *, what: str) -> None:
        found = self.peek()
        if found != char[0]:
            shown = "the end of the file" if found is None else repr(chr(found))
            raise self._broken(f"expected {what}, found {shown}")
        self._advance(self.pos + 1)

    def value(self, *, keep: bool) -> bytes | None:
        """Pass the value that starts here (call peek first); return its bytes if `keep`."""
        first = self.buf[self.pos]
        if first == ord('"'):
            end = self._string_end(self.pos)
        elif first in b"[{":
            end = self._container_end(keep=keep)
        else:
            end = self._scalar_end()
        raw = bytes(self.buf[self.pos:end]) if keep else None
        self._advance(end)
        return raw

    def _string_end(self, quote: int) -> int:
        """Return the index after the string whose quote is at `quote`; bytes from pos on are kept."""
        while True:
            match = _STRING_REST.match(self.buf, quote + 1)
            if match is not None:
                return match.end()
            moved, more = self._fill(keep_from=self.pos)
            quote -= moved
            if not more:
                raise self._broken("a string is not closed")

    def _scalar_end(self) -> int:
        while True:
            match = _SCALAR_END.search(self.buf, self.pos)
            if match is not None:
                return match.start()
            _, more = self._fill(keep_from=self.pos)
            if not more:
                return len(self.buf)

    def _container_end(self, *, keep: bool) -> int:
        depth = 0
        index = self.pos
        while True:
            match = _STRUCTURE.search(self.buf, index)
            if match is None:
                # Passing over a value: what lies behind the search is not needed any more.
                if not keep:
                    self._advance(len(self.buf))
                moved, more = self._fill(keep_from=self.pos)
                index = max(0, index - moved) if keep else 0
                if not more:
                    raise self._broken("the file ends inside a list or object")
                continue
            char = self.buf[match.start()]
            if char == ord('"'):
                quote = match.start()
                if not keep:
                    self._advance(quote)  # may compact the buffer: the quote is where reading stands
                    quote = self.pos
                index = self._string_end(quote)
                continue
            depth += 1 if char in b"[{" else -1
            index = match.end()
            if depth == 0:
                return index


def _json_loads(raw: bytes, *, name: str, line: int, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise SourceError(f"{name}, line {line} ({what}): not valid JSON ({error})") from None


def json_locate(scanner: JsonScanner, *, path: tuple[str, ...]) -> None:
    """Move the scanner just inside the list of objects: the top-level list, or the one at `path`."""
    if scanner.peek() is not None and scanner.buf.startswith(BOM, scanner.pos):
        scanner._advance(scanner.pos + len(BOM))
    shown = ".".join(path)
    for depth, key in enumerate(path):
        where = ".".join(path[:depth]) or "the top"
        if scanner.peek() != ord("{"):
            raise SourceError(f"{scanner.name}: objectsPath {shown!r}: {where} is not an object")
        scanner._advance(scanner.pos + 1)
        while True:
            found = scanner.peek()
            if found == ord("}"):
                raise SourceError(f"{scanner.name}: objectsPath {shown!r}: no key {key!r} in {where}")
            if found == ord(","):
                scanner._advance(scanner.pos + 1)
                continue
            if found != ord('"'):
                scanner.expect(b'"', what="a key")
            line = scanner.line
            name = _json_loads(scanner.value(keep=True), name=scanner.name, line=line, what="a key")
            scanner.expect(b":", what="':' after a key")
            if scanner.peek() is None:
                raise scanner._broken("the file ends after a key")
            if name == key:
                break
            scanner.value(keep=False)
    found = scanner.peek()
    if found != ord("["):
        if not path and found == ord("{"):
            raise SourceError(f"{scanner.name}: the file holds an object, not a list: set sourceConfig.objectsPath "
                              "to the dot path of the list of objects in it")
        what = f"objectsPath {shown!r}" if path else "the file"
        kind = "nothing" if found is None else "not a list"
        raise SourceError(f"{scanner.name}: {what} holds {kind}; the objects must be a JSON list")
    scanner._advance(scanner.pos + 1)


def json_page(handle: IO[bytes], *, request: dict[str, Any], options: FileOptions, name: str) -> PageOut:
    """Read one page of the elements of a JSON list, from just inside the list or just after an element."""
    scanner = JsonScanner(handle, offset=request["offset"], line=request["line"], name=name)
    if request["offset"] == 0:
        json_locate(scanner, path=options.objects_path)
    row = request["row"]
    rows: list[Any] = []
    budget = PageBudget(where=name)
    done = False
    while True:
        found = scanner.peek()
        if found == ord("]"):
            scanner._advance(scanner.pos + 1)
            done = True
            if not options.objects_path and scanner.peek() is not None:
                raise scanner._broken("more after the list ends")
            break
        if len(rows) >= options.page_size:
            break
        if row > 0:
            if found != ord(","):
                shown = "the end of the file" if found is None else repr(chr(found))
                raise scanner._broken(f"expected ',' or ']' after element {row}, found {shown}")
            scanner._advance(scanner.pos + 1)
            found = scanner.peek()
        if found is None:
            raise scanner._broken("the file ends inside the list")
        if found in b",]":
            raise scanner._broken(f"expected element {row + 1}, found {chr(found)!r}")
        line = scanner.line
        raw = scanner.value(keep=True)
        budget.add(len(raw), what=f"element {row + 1} (line {line})")
        row += 1
        rows.append(_json_loads(raw, name=name, line=line, what=f"element {row}"))
    return PageOut(rows=rows, offset=scanner.offset, line=scanner.line, row=row, done=done)


# ---------------------------------------------------------------------------------------------
# Where the file is


def _stat_stamp(size: int, mtime_ns: int | None) -> dict[str, Any]:
    return {"size": size, "mtime": mtime_ns}


def download_name(download: str) -> str:
    """Return the name in the default storage of a run's copy of a file at a URL."""
    return f"{DOWNLOADS}/{download}"


def downloads_purge(*, older_than_seconds: float = DOWNLOAD_KEEP_SECONDS) -> int:
    """Remove the copies of runs that never reached their last page; return how many."""
    try:
        _, names = default_storage.listdir(DOWNLOADS)
    except FileNotFoundError:
        return 0
    removed = 0
    cutoff = time.time() - older_than_seconds
    for name in names:
        path = download_name(name)
        try:
            if default_storage.get_modified_time(path).timestamp() < cutoff:
                default_storage.delete(path)
                removed += 1
        except Exception as error:  # noqa: BLE001 - a copy another task removed first, a store that hiccuped
            logger.info("a left copy %s was not removed: %s", path, error)
    return removed


# ---------------------------------------------------------------------------------------------
# The reader of `file` sources


class FileSourceConfig(RunSettings, CallOptions):
    """sourceConfig of a synchronization that reads a CSV, NDJSON or JSON file (the call options: a file at a URL)."""

    format: Literal["json", "ndjson", "csv"] | None = None
    """csv, ndjson (one JSON value a line) or json (a list); default from the file name."""
    objects_path: str | None = None
    """JSON: the dot path of the list of objects in the file (data.items); default: the file is the list."""
    delimiter: str | None = None
    """CSV: one character (default , or a tab for .tsv)."""
    quotechar: str | None = None
    """CSV: one character (default ")."""
    encoding: str | None = None
    """Default utf-8 (a byte-order mark is skipped); latin-1, cp1252, … for CSV and NDJSON."""
    header: bool | None = None
    """CSV: the first record names the columns (default true)."""
    columns: list[str] | None = None
    """CSV: the column names; needed without a header row, with one they replace its names."""
    page_size: int | None = None
    """Records a page, 1 to 10000 (default 1000)."""


@reader_type("file", label="File")
class FileReader(ReaderKind):
    """Pages of records of a CSV, NDJSON or JSON file: uploaded, at a URL, or in an allowed directory."""

    declaration = FileSourceConfig

    concurrency = 1  # a page starts where the page before ended

    def __init__(self, synchronization: Synchronization):
        self.source: Source = synchronization.source
        self.source_config: dict[str, Any] = synchronization.source_config or {}
        self.options = file_options(self.source_config)
        max_pages = self.source_config.get("maxPages")
        self.max_pages = max_pages if isinstance(max_pages, int) and max_pages > 0 else settings.SYNC_DEFAULT_MAX_PAGES
        self.location = (self.source.location or "").strip()
        if self.source.file:
            self.kind, self.display = "upload", PurePosixPath(self.source.file.name).name
        elif is_url(self.location):
            self.kind, self.display = "url", mask_url(self.location)
        else:
            self.kind, self.display = "path", self.location
        name = self.source.file.name if self.kind == "upload" else urlsplit(self.location).path or self.location
        self.format = format_of(name, self.options)
        suffix = PurePosixPath(name).suffix.lower()
        self.delimiter = self.options.delimiter or ("\t" if suffix == ".tsv" else ",")
        if self.format == "csv" and not self.options.header and not self.options.columns:
            raise SourceError("sourceConfig.columns: a CSV file without a header row needs its column names")
        if self.format == "json" and self.options.encoding not in ("utf-8", "utf-8-sig"):
            raise SourceError(f"sourceConfig.encoding: a JSON file is read as UTF-8, got {self.options.encoding!r}")

    @staticmethod
    def config_problems(source_config: dict[str, Any], *, path: str) -> list[str]:
        # A file at a URL is fetched with the call settings an API source has.
        return source_config_problems(source_config, path=path) + file_source_config_problems(source_config, path=path)

    @staticmethod
    def problem(synchronization: Synchronization) -> str | None:
        source = synchronization.source
        if source is None:
            return f"synchronization {synchronization.reference!r} has no file source (sourceId)"
        if source.type != "file":
            return (f"synchronization {synchronization.reference!r} reads a file, but source {source.reference!r} "
                    f"is of type {source.type}")
        if source.file:
            return None
        # Checked again on every read: the allowed directories or a link may have changed since the save.
        problems = file_location_problems(source.location, has_upload=False, path="location")
        if problems:
            return f"source {source.reference!r}: {'; '.join(problems)}"
        return None

    def first_request(self, *, variables: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {"offset": 0, "line": 1, "row": 0, "stamp": None}
        if self.kind == "upload":
            request["upload"] = self.source.file.name  # a new upload is another name: the run reads this one
        if self.kind == "url":
            run = variables.get("run") or {}
            request["download"] = f"run-{run['id']}" if run.get("id") is not None else f"read-{uuid.uuid4().hex}"
            if run.get("test") or run.get("id") is None:
                request["single"] = True  # a test run reads the first page only: keep no copy after it
        return request

    def fetch(self, *, request: dict[str, Any], on_wait: OnWait | None = None) -> Fetched:
        with self._open(request=request, on_wait=on_wait) as (handle, size, stamp):
            if request.get("stamp") is not None and request["stamp"] != stamp:
                raise SourceError(
                    f"{self.display} changed during the run (it is not the file the run's first page read): "
                    "run the synchronization again"
                )
            if self.format == "ndjson":
                out = ndjson_page(handle, request=request, options=self.options, name=self.display, size=size)
            elif self.format == "csv":
                out = csv_page(handle, request=request, options=self.options, name=self.display, size=size,
                               delimiter=self.delimiter)
            else:
                out = json_page(handle, request=request, options=self.options, name=self.display)
        following = None
        if not out.done:
            following = {**request, "offset": out.offset, "line": out.line, "row": out.row, "stamp": stamp}
            if out.columns is not None and self.format == "csv":
                following["columns"] = out.columns  # the header is read once, on the first page
        if self.kind == "url" and (out.done or request.get("single")):
            self._download_remove(request)  # the last page: the run needs its copy no more
        return Fetched(request=request, body=out.rows, url=self.display, format=self.format,
                       meta={"next": following})

    def page(self, *, request: dict[str, Any], fetched: Fetched) -> ReadPage:
        objects = list(fetched.body)
        return ReadPage(objects=objects, hashes=[hash_value(obj) for obj in objects],
                        next_request=fetched.meta.get("next"))

    def ahead(self, *, request: dict[str, Any], steps: int) -> dict[str, Any] | None:
        return None  # where a page starts is known only once the page before is read

    def same_request(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
        keys = ("offset", "upload", "download")
        return all(first.get(key) == second.get(key) for key in keys)

    # -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _open(self, *, request: dict[str, Any], on_wait: OnWait | None) -> Iterator[tuple[IO[bytes], int, dict]]:
        """Open the file the request reads; yield it with its size and the stamp that tells it from another."""
        if self.kind == "upload":
            name = request.get("upload") or self.source.file.name
            try:
                handle = default_storage.open(name, "rb")
            except FileNotFoundError:
                raise SourceError(f"the uploaded file {self.display} is gone from the file storage "
                                  "(SYNC_MEDIA_ROOT, or the bucket SYNC_S3_BUCKET): upload it again") from None
            except OSError as error:
                raise SourceError(f"the uploaded file {self.display} cannot be read: {error.strerror}") from None
            with handle:
                size = handle.size
                yield handle, size, _stat_stamp(size, None)
            return
        if self.kind == "path":
            path = allowed_path(self.location)
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
            except FileNotFoundError:
                raise SourceError(f"{self.display}: no such file") from None
            except OSError as error:
                raise SourceError(f"{self.display} cannot be read: {error.strerror}") from None
            with handle:
                status = os.fstat(handle.fileno())
                yield handle, status.st_size, _stat_stamp(status.st_size, status.st_mtime_ns)
            return
        # The run's copy, if a task of the run downloaded it (on any worker: it is in the default storage,
        # the shared media root or the bucket); a copy found is the run's own: its stamp is the one the
        # requests carry.
        name = download_name(request["download"])
        stamp = request.get("stamp")
        try:
            handle = default_storage.open(name, "rb")
        except FileNotFoundError:
            stamp = self._download(name=name, on_wait=on_wait)
            handle = default_storage.open(name, "rb")
        with handle:
            size = handle.size
            if stamp is None:  # the first page's task was redelivered after it downloaded
                stamp = {"size": size, "sha256": _sha256_file(handle)}
                handle.seek(0)
            yield handle, size, stamp

    def _download_remove(self, request: dict[str, Any]) -> None:
        with contextlib.suppress(FileNotFoundError):
            default_storage.delete(download_name(request["download"]))

    def _download(self, *, name: str, on_wait: OnWait | None) -> dict[str, Any] | None:
        """Download the file at the source's URL and store it as `name` in the default storage (whole, or not
        at all); return its stamp, or None when another task of the run stored it first."""
        downloads_purge()
        call = call_settings(source=self.source, source_config=self.source_config)
        try:
            auth = authenticator_for(source=self.source, timeout=call.timeout, verify=call.verify)
        except CredentialsError as error:
            raise SourceError(f"the credentials of source {self.source.reference!r} are not usable: {error}") from None
        headers = dict(call.headers)
        if not any(name.lower() == "accept" for name in headers):
            headers["Accept"] = "*/*"
        params = dict(call.query)
        auth.apply(headers=headers, params=params)
        limits = BodyLimits(
            max_bytes=settings.SYNC_FILE_MAX_BYTES, max_bytes_setting="SYNC_FILE_MAX_BYTES",
            seconds=settings.SYNC_FILE_DOWNLOAD_TIMEOUT, seconds_setting="SYNC_FILE_DOWNLOAD_TIMEOUT",
        )
        shown = mask_url(self.location, secret_params=auth.credentials.secret_params)
        # Downloaded into a temporary file of this process first, then stored whole: a bucket takes an object
        # whole, and a reader of the media root never sees a copy that failed half-way.
        with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as sink:
            stamp = self._download_into(sink, call=call, auth=auth, headers=headers, params=params, limits=limits,
                                        shown=shown, on_wait=on_wait)
            stored = default_storage.save(name, File(sink, name=PurePosixPath(name).name))
        if stored != name:
            # Another task of the run stored its copy first: read that one (its stamp is computed from it).
            default_storage.delete(stored)
            return None
        logger.info("downloaded %s (%s bytes) for %s", shown, stamp["size"], name)
        return stamp

    def _download_into(self, sink: IO[bytes], *, call: Any, auth: Any, headers: dict, params: dict,
                       limits: BodyLimits, shown: str, on_wait: OnWait | None) -> dict[str, Any]:
        """Write the file at the source's URL into `sink`; return its stamp (size and SHA-256)."""
        secret_params = auth.credentials.secret_params
        with source_errors(secrets=auth.secrets):
            def get():
                return http_request(
                    method="GET", url=self.location, params=params, headers=headers, timeout=call.timeout,
                    verify=call.verify, source=self.source, secret_params=secret_params,
                    secret_headers=auth.credentials.secret_headers, secrets=auth.secrets, on_wait=on_wait,
                    sink=sink, sink_limits=limits,
                )

            response = get()
            if response.status_code == 401 and auth.can_refresh:
                auth.refresh()  # a cached token may have been revoked: a new one, once
                auth.apply(headers=headers, params=params)
                response = get()
            if response.status_code >= 300:
                content_type = response.headers.get("Content-Type") or "no content type"
                hint = ": check the source's credentials" if response.status_code in (401, 403) else ""
                raise SourceError(f"GET {shown} answered {response.status_code} ({content_type}){hint}: "
                                  f"{redacted_snippet(response.text, auth.secrets)!r}")
            sink.flush()
            stamp = {"size": sink.seek(0, os.SEEK_END), "sha256": _sha256_file(sink)}
            sink.seek(0)
            return stamp


def _sha256_file(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    while chunk := handle.read(READ_SIZE):
        digest.update(chunk)
    return digest.hexdigest()
