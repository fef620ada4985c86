"""Dot paths into nested JSON: ``"a.b.0.c"`` walks dicts by key and lists by index.

Keys may themselves contain dots (``{"a.b": 1}``). At every level the longest run of the remaining
segments that exists literally as a key wins; if that branch does not lead to the end of the path, shorter
runs are tried, so a path resolves whenever any reading of it exists. ``get_path``, ``has_path`` and
``delete_path`` share that resolution, so they always agree on which value a path means.

``&#46;`` in a path is a dot inside a key, as OpenConnector writes it (its conditions and mappings see keys
with their dots encoded so): ``"values.attribute&#46;woo_categorie"`` names the key
``"attribute.woo_categorie"`` under ``"values"``. Conditions, mappings, enrichment and every other dot path
read it here, so they all agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

__all__ = ["DOT", "MISSING", "delete_path", "get_path", "has_path", "set_path"]

DOT: Final = "&#46;"
"""A dot inside a key of a dot path (OpenConnector's encoding)."""


class _Missing:
    """Mark a value that is absent (``None`` is a legitimate JSON value)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        # One instance only, so identity checks (`is MISSING`) survive copying and pickling.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"

    def __copy__(self) -> _Missing:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Missing:
        return self


MISSING: Final = _Missing()


def _segments(path: str) -> list[str]:
    """Split a dot path; the empty path and ``"."`` mean the root."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a string, not {type(path).__name__}")
    if path in ("", "."):
        return []
    if DOT in path:
        return [segment.replace(DOT, ".") for segment in path.split(".")]
    return path.split(".")


def _plain_key(path: Any) -> bool:
    """Tell whether a path is one key without dots, the common case taken without splitting."""
    return type(path) is str and bool(path) and "." not in path and DOT not in path


def _list_index(container: list[Any], segment: str) -> int | None:
    """Return the list index a segment names, or None when it names none."""
    # isdecimal() alone accepts non-ASCII digits such as "٣"; JSON paths only use ASCII.
    if segment.isascii() and segment.isdecimal():
        index = int(segment)
        if index < len(container):
            return index
    return None


def _candidate_keys(container: Any, segments: list[str]) -> Iterator[tuple[Any, int]]:
    """Yield (key, segments consumed) for the next step, longest literal key first."""
    if isinstance(container, dict):
        for end in range(len(segments), 0, -1):
            key = ".".join(segments[:end])
            if key in container:
                yield key, end
    elif isinstance(container, list):
        index = _list_index(container, segments[0])
        if index is not None:
            yield index, 1


def _locate(data: Any, segments: list[str]) -> tuple[Any, Any] | None:
    """Return (parent, key) of the value a non-empty path names, or None."""
    for key, used in _candidate_keys(data, segments):
        if used == len(segments):
            return data, key
        found = _locate(data[key], segments[used:])
        if found is not None:
            return found
    return None


def get_path(data: Any, path: str, *, default: Any = MISSING) -> Any:
    """Return the value at a dot path, or ``default`` when it is absent."""
    if type(data) is dict and _plain_key(path):
        # The common case, a plain key, without splitting the path.
        return data.get(path, default)
    segments = _segments(path)
    if not segments:
        return data
    found = _locate(data, segments)
    if found is None:
        return default
    parent, key = found
    return parent[key]


def has_path(data: Any, path: str) -> bool:
    """Return whether a dot path exists (a ``None`` value counts as existing)."""
    segments = _segments(path)
    return not segments or _locate(data, segments) is not None


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dot path, creating intermediate dicts.

    An existing path is replaced where ``get_path`` finds it. Otherwise existing (possibly dotted) keys
    holding containers are followed, longest first, and missing levels are created as dicts; in a list,
    the index one past the end appends.

    Raise ValueError for the empty path and when an existing scalar is in the way: silently replacing
    it would lose data another part of a mapping wrote. A ``None`` in the way is replaced by a dict.
    """
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict, not {type(data).__name__}")
    if _plain_key(path):
        data[path] = value  # a plain key: found or not, it is set right here
        return
    segments = _segments(path)
    if not segments:
        raise ValueError("cannot set the empty path")
    found = _locate(data, segments)
    if found is not None:
        # Replace exactly the value get_path would return, whichever reading of the path found it.
        parent, key = found
        parent[key] = value
        return
    _set(data, segments, value, path)


def _set(container: Any, segments: list[str], value: Any, path: str) -> None:
    """Set ``value`` at ``segments`` below ``container``."""
    if isinstance(container, list):
        _set_in_list(container, segments, value, path)
        return
    if not isinstance(container, dict):
        raise ValueError(f"cannot set {path!r}: a {type(container).__name__} value is in the way")
    whole = ".".join(segments)
    if len(segments) == 1 or whole in container:
        container[whole] = value
        return
    # Follow an existing (possibly dotted) key into a container, longest first, so that
    # set_path writes where get_path would later read.
    for end in range(len(segments) - 1, 0, -1):
        key = ".".join(segments[:end])
        if key in container and isinstance(container[key], dict | list):
            _set(container[key], segments[end:], value, path)
            return
    head = segments[0]
    if container.get(head) is not None:
        # A scalar is in the way: refuse rather than clobber data. None carries nothing, so it yields.
        raise ValueError(f"cannot set {path!r}: {head!r} holds a {type(container[head]).__name__}")
    child: dict[str, Any] = {}
    container[head] = child
    _set(child, segments[1:], value, path)


def _set_in_list(container: list[Any], segments: list[str], value: Any, path: str) -> None:
    """Set ``value`` below a list: an existing index, or the index one past the end to append."""
    head = segments[0]
    if not (head.isascii() and head.isdecimal()) or int(head) > len(container):
        raise ValueError(f"cannot set {path!r}: {head!r} is not an index into a list of {len(container)}")
    index = int(head)
    if len(segments) == 1:
        if index == len(container):
            container.append(value)
        else:
            container[index] = value
        return
    if index == len(container):
        container.append({})
    elif container[index] is None:
        container[index] = {}
    _set(container[index], segments[1:], value, path)


def delete_path(data: Any, path: str) -> bool:
    """Remove the value at a dot path; return whether anything was removed."""
    segments = _segments(path)
    if not segments:
        return False
    found = _locate(data, segments)
    if found is None:
        return False
    parent, key = found
    del parent[key]
    return True
