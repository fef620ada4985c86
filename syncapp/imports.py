"""What `sync import` reads, and its report per object: a bundle, one OpenConnector object, or a folder of them.

- A bundle of this service, or OpenConnector's `components` document, reads as it is (syncapp.openconnector).
- One object as OpenConnector's API takes it: its kind is its `@type`, else the kind given (`--kind`),
  else the folder it sits in (`sources/`, `mappings/`, `rules/`, `synchronizations/`); a file whose
  kind none of these tells is refused, saying so.
- A folder: every JSON or YAML file in it and below it, in the order of their paths, one object each, its
  kind told as above, all read together as one `components` document, so that links between them resolve
  (a numeric id names the folder's objects of that kind in that order: syncapp.openconnector). Other
  files are named in the notes, not read. A folder holding several configurations (several folders with
  their own sources/, mappings/, …) is refused: each is imported on its own, its ids its own.

The report names each object with its outcome (imported, or importable for a check; refused, with
every problem; not imported, with why), the keys it held that are not imported, and the notes of its
reading (links resolved by position, secrets moved into credentials, bookkeeping and empty keys left out).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncapp.configuration import (
    SECTIONS,
    ConfigurationInvalid,
    ImportResult,
    bundle_import,
    bundle_load,
    bundle_validate,
    unstorable_values,
)
from syncapp.errors import SyncError
from syncapp.openconnector import bundle_read

KINDS = {"source": "sources", "mapping": "mappings", "rule": "rules", "synchronization": "synchronizations"}
_KIND_OF_SECTION = {**{section: kind for kind, section in KINDS.items()}, "registers": "register"}
_READABLE = (".json", ".yaml", ".yml")
_OBJECT_PATH = re.compile(r"^(sources|registers|mappings|rules|synchronizations)\[(\d+)\]")
# Keys of a document that is a bundle or a `components` document, not one object.
_DOCUMENT_KEYS = frozenset({*SECTIONS, "components"})


class ImportUnreadable(SyncError, ValueError):
    """What was given to import cannot be read as a bundle or as OpenConnector's objects."""


@dataclass
class Document:
    """What an import reads: the document, where each of its objects came from, and notes on the reading."""

    content: Any
    origins: dict[str, str] = field(default_factory=dict)  # "sources[0]" -> "sources/x.json"
    notes: list[str] = field(default_factory=list)


@dataclass
class ObjectReport:
    """One object of an import: where it came from, what became of it and why."""

    what: str  # its file, or its path in the document
    kind: str
    reference: str | None
    outcome: str  # imported, importable, refused, not imported
    problems: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"object": self.what, "kind": self.kind, "reference": self.reference, "outcome": self.outcome,
                "problems": self.problems, "ignored": self.ignored, "notes": self.notes}


@dataclass
class ImportReport:
    """An import, or a check of one: each object's outcome, and what belongs to no object."""

    objects: list[ObjectReport]
    problems: list[str]  # every problem, with its path
    general: list[str]  # the problems of no one object (of the document as a whole)
    notes: list[str]
    result: ImportResult | None  # None: refused, or only checked

    @property
    def refused(self) -> bool:
        return bool(self.problems)


def document_read(path: Path, *, kind: str | None = None) -> Document:
    """Return what a file or a folder holds, as one document; raise ImportUnreadable naming what is wrong."""
    if path.is_dir():
        return _folder_read(path, kind=kind)
    content = bundle_load(path)
    if kind is None and _is_document(content):
        return Document(content=content)
    section = _section_of(content, given=kind, folder=path.parent.name, where=str(path))
    return Document(content={"components": {section: [content]}}, origins={f"{section}[0]": str(path)})


def _is_document(content: Any) -> bool:
    return isinstance(content, dict) and "@type" not in content and bool(_DOCUMENT_KEYS & set(content))


def _section_of(content: Any, *, given: str | None, folder: str, where: str) -> str:
    """Return the section of one OpenConnector object: by its @type, the kind given, or its folder."""
    if not isinstance(content, dict):
        raise ImportUnreadable(f"{where}: one object of OpenConnector's must be a JSON object")
    declared = content.get("@type")
    declared = declared.lower() if isinstance(declared, str) else declared
    if declared is not None and declared not in KINDS:
        raise ImportUnreadable(f"{where}: @type {content['@type']!r} is none of {', '.join(KINDS)}")
    if declared is not None and given is not None and declared != given:
        raise ImportUnreadable(f"{where}: its @type is {declared!r}, not the {given!r} given (--kind)")
    if declared is not None or given is not None:
        return KINDS[declared or given]
    if folder in _KIND_OF_SECTION and folder != "registers":
        return folder
    raise ImportUnreadable(
        f"{where}: cannot tell what kind of object this is: it has no @type and sits in no folder named "
        f"{', '.join(f'{section}/' for section in KINDS.values())}; give --kind {'|'.join(KINDS)}"
    )


def _folder_read(folder: Path, *, kind: str | None) -> Document:
    components: dict[str, list[Any]] = {}
    document = Document(content={"components": components})
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    for path in files:
        where = str(path.relative_to(folder))
        if path.suffix.lower() not in _READABLE or any(part.startswith(".") for part in path.relative_to(folder).parts):
            document.notes.append(f"{where}: not read (not a JSON or YAML file)")
            continue
        content = bundle_load(path)
        if _is_document(content):
            raise ImportUnreadable(f"{where}: a folder holds one object per file; import a bundle or a "
                                   "components document on its own")
        section = _section_of(content, given=kind if "@type" not in content else None, folder=path.parent.name,
                              where=where)
        document.origins[f"{section}[{len(components.setdefault(section, []))}]"] = where
        components[section].append(content)
    if not components:
        raise ImportUnreadable(f"{folder}: no JSON or YAML objects in it")
    configurations = sorted({_configuration_of(Path(where)) for where in document.origins.values()})
    if len(configurations) > 1:
        # Numeric ids name objects of one installation's export: across configurations they would link wrongly.
        raise ImportUnreadable(
            f"{folder}: holds {len(configurations)} configurations ({', '.join(map(str, configurations))}): import "
            "each on its own, as OpenConnector's numeric ids name the objects of one configuration"
        )
    return document


def _configuration_of(where: Path) -> Path:
    """Return the folder of the configuration a file belongs to: the one holding its sources/, mappings/, …"""
    return where.parent.parent if where.parent.name in KINDS.values() else where.parent


def import_checked(document: Document, *, write: bool, actor: Any = None) -> ImportReport:
    """Check a document, and import it when `write` and it is sound; return the report per object."""
    unstorable = unstorable_values(document.content)
    if unstorable:  # reading it would choke on them
        return ImportReport(objects=[], problems=unstorable, general=unstorable, notes=document.notes, result=None)
    reading = bundle_read(document.content)
    result = None
    try:
        if write:
            result = bundle_import(document.content, actor=actor)
        else:
            bundle_validate(document.content)
        problems: list[str] = []
    except ConfigurationInvalid as error:
        problems = list(error.problems)
    # An object without problems of its own: imported, importable (a check), or not imported with the rest.
    outcome_of_sound = "imported" if result is not None else "not imported" if write else "importable"
    by_object: dict[str, dict[str, list[str]]] = {}
    rest: list[str] = []
    general: list[str] = []
    for what, entries in (("problems", problems), ("ignored", reading.ignored), ("notes", reading.moved),
                          ("notes", reading.notes), ("not imported", reading.not_imported)):
        for entry in entries:
            match = _OBJECT_PATH.match(entry)
            if match is None:
                (general if what == "problems" else rest).append(entry)
                continue
            inner = entry[match.end():].lstrip(".")
            inner = inner[1:].strip() if inner.startswith(":") else inner
            by_object.setdefault(match.group(0), {}).setdefault(what, []).append(inner)
    objects = []
    bundle = reading.bundle if isinstance(reading.bundle, dict) else {}
    keys = [f"{section}[{index}]" for section in SECTIONS
            for index in range(len(bundle.get(section) or []) if isinstance(bundle.get(section), list) else 0)]
    for key in keys:
        section = key.partition("[")[0]
        index = int(key[len(section) + 1:-1])
        entries = by_object.get(key, {})
        item = bundle[section][index]
        reference = item.get("reference") if isinstance(item, dict) else None
        outcome = "refused" if entries.get("problems") else outcome_of_sound
        notes = [*entries.get("notes", []), *entries.get("not imported", [])]
        if outcome == "not imported":
            notes.append("the import is refused as a whole while any object is refused")
        objects.append(ObjectReport(
            what=document.origins.get(key, key), kind=_KIND_OF_SECTION[section], reference=reference,
            outcome=outcome, problems=entries.get("problems", []), ignored=entries.get("ignored", []), notes=notes,
        ))
    return ImportReport(objects=objects, problems=problems, general=general, notes=[*document.notes, *rest],
                        result=result)
