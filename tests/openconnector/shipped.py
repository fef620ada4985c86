"""The shipped folders as the tests use them: copied, their sources pointed at a fake (and, for
SharePoint, given the OAuth client the shipped file leaves empty), read back as documents."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

CONFIGURATIONS = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "openconnector" / "configurations"
)
EXPECTED = Path(__file__).parent / "expected"
FOLDERS = ("xxllnc-zoekendpoint-woo", "xxllnc-suite-woo", "RX-woo", "sharepoint-woo")
SHAREPOINT_CLIENT = {
    "grant_type": "client_credentials",
    "scope": "https://contoso.sharepoint.com/.default",
    "client_id": "woo-sync",
    "client_secret": "sp-client-secret-never-show",
}


def configurations_dir() -> Path:
    """Return the folder of OpenConnector's shipped configurations (SYNC_OPENCONNECTOR_CONFIGURATIONS overrides)."""
    return Path(os.environ.get("SYNC_OPENCONNECTOR_CONFIGURATIONS") or CONFIGURATIONS).resolve()


def documents(folder: Path, kind: str) -> dict[Path, dict[str, Any]]:
    """Return a folder's documents of one kind (sources, mappings, rules, synchronizations) by file."""
    return {path: json.loads(path.read_text()) for path in sorted((folder / kind).glob("*.json"))}


def folder_copied(name: str, *, into: Path, location: str) -> Path:
    """Copy a shipped folder into `into` and point its sources at `location`: the only edit, but for
    SharePoint's OAuth client (tokenUrl, grant_type, client id and secret are empty as shipped; OpenConnector
    cannot run it either without them)."""
    copied = into / name
    shutil.copytree(configurations_dir() / name, copied)
    for path, source in documents(copied, "sources").items():
        source["location"] = location
        authentication = (source.get("configuration") or {}).get("authentication")
        if isinstance(authentication, dict) and "tokenUrl" in authentication:
            authentication.update(SHAREPOINT_CLIENT, tokenUrl=f"{location}/oauth2/token")
        path.write_text(json.dumps(source, indent=4, ensure_ascii=False))
    return copied


def expected_of(name: str) -> dict[str, Any]:
    return json.loads((EXPECTED / f"{name}.json").read_text())
