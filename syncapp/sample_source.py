"""Serve a small zoo API over HTTP on 127.0.0.1 for the demo and the tests.

The records look like a real, slightly sloppy upstream system: ids are whole numbers, but `legs`
comes as text in about a third of them. Three shapes of the same data are served:

- `/animals?page=N&per_page=K`: DRF style `{"count", "next", "previous", "results"}` with absolute links;
  `updated_since=ISO-8601` keeps the records updated at or after that moment (in `updatedAt` order);
- `/animals/{id}`: one record, or 404 `{"detail": "Not found."}`;
- `/api/zoo/animals?page=N`: nested `{"data": {"items"}, "meta": {"page", "pages", "total"}}`, no links;
- `/animals.json`: the bare list of all records.

Run it alone with `python -m syncapp.sample_source --port 8900 --count 300`.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit

MAX_PAGE_SIZE = 500
"""The largest `per_page` honoured; larger values are lowered to it, as DRF does."""

# (species, legs, lightest kg, heaviest kg, oldest age in years, tags)
_SPECIES: tuple[tuple[str, int, float, float, int, tuple[str, ...]], ...] = (
    ("African elephant", 4, 2700.0, 6000.0, 60, ("mammal", "herbivore", "savanna")),
    ("Asian elephant", 4, 2200.0, 5000.0, 60, ("mammal", "herbivore", "forest")),
    ("Reticulated giraffe", 4, 700.0, 1300.0, 25, ("mammal", "herbivore", "savanna")),
    ("Plains zebra", 4, 175.0, 385.0, 25, ("mammal", "herbivore", "savanna")),
    ("White rhinoceros", 4, 1400.0, 2300.0, 45, ("mammal", "herbivore", "savanna")),
    ("Common hippopotamus", 4, 1300.0, 2800.0, 45, ("mammal", "herbivore", "river")),
    ("Lion", 4, 120.0, 225.0, 20, ("mammal", "carnivore", "savanna")),
    ("Sumatran tiger", 4, 75.0, 140.0, 20, ("mammal", "carnivore", "forest")),
    ("Snow leopard", 4, 22.0, 55.0, 20, ("mammal", "carnivore", "mountain")),
    ("Cheetah", 4, 21.0, 72.0, 15, ("mammal", "carnivore", "savanna")),
    ("Meerkat", 4, 0.6, 1.0, 12, ("mammal", "insectivore", "desert")),
    ("Red panda", 4, 3.0, 6.2, 15, ("mammal", "herbivore", "forest")),
    ("Giant panda", 4, 70.0, 125.0, 30, ("mammal", "herbivore", "forest")),
    ("Western lowland gorilla", 2, 70.0, 200.0, 45, ("mammal", "primate", "forest")),
    ("Bornean orangutan", 2, 30.0, 90.0, 45, ("mammal", "primate", "forest")),
    ("Ring-tailed lemur", 4, 2.2, 3.5, 20, ("mammal", "primate", "forest")),
    ("Red kangaroo", 2, 18.0, 85.0, 20, ("mammal", "marsupial", "grassland")),
    ("Koala", 4, 4.0, 14.0, 15, ("mammal", "marsupial", "forest")),
    ("California sea lion", 4, 50.0, 350.0, 25, ("mammal", "carnivore", "ocean")),
    ("Capybara", 4, 35.0, 66.0, 10, ("mammal", "herbivore", "river")),
    ("Humboldt penguin", 2, 3.6, 5.9, 25, ("bird", "piscivore", "coast")),
    ("Chilean flamingo", 2, 2.0, 3.5, 40, ("bird", "omnivore", "wetland")),
    ("Common ostrich", 2, 63.0, 145.0, 40, ("bird", "omnivore", "savanna")),
    ("Scarlet macaw", 2, 0.9, 1.4, 50, ("bird", "herbivore", "rainforest")),
    ("Snowy owl", 2, 1.6, 2.9, 25, ("bird", "carnivore", "tundra")),
    ("Komodo dragon", 4, 40.0, 90.0, 30, ("reptile", "carnivore", "island")),
    ("Aldabra giant tortoise", 4, 110.0, 250.0, 100, ("reptile", "herbivore", "island")),
    ("Green anaconda", 0, 30.0, 97.0, 30, ("reptile", "carnivore", "river")),
    ("Burmese python", 0, 15.0, 75.0, 25, ("reptile", "carnivore", "forest")),
    ("Axolotl", 4, 0.06, 0.23, 15, ("amphibian", "carnivore", "lake")),
    ("Giant Pacific octopus", 8, 10.0, 50.0, 5, ("invertebrate", "carnivore", "ocean")),
    ("Mexican red-knee tarantula", 8, 0.015, 0.03, 30, ("invertebrate", "carnivore", "desert")),
)

_NAMES: tuple[str, ...] = (
    "Amara", "Bongo", "Chandra", "Dumisani", "Ebony", "Faraji", "Gigi", "Hodari", "Imani", "Jabari",
    "Kito", "Lulu", "Mosi", "Nala", "Obi", "Pippa", "Quincy", "Rafiki", "Sita", "Tandu",
    "Uma", "Vesna", "Wanjiru", "Xena", "Yara", "Zuri", "Aiko", "Bruno", "Cleo", "Dobby",
    "Esme", "Fritz", "Greta", "Hugo", "Iris", "Juno", "Kasimir", "Luna", "Milo", "Nori",
    "Oskar", "Pepper", "Rosie", "Samson", "Tilly", "Ursula", "Winston", "Ziggy",
)

_KEEPERS: tuple[str, ...] = (
    "Anna Kowalski", "Ben Okafor", "Carla Mendes", "David Nguyen", "Elif Yilmaz", "Femi Adeyemi",
    "Greta Lindqvist", "Hiro Tanaka", "Isla MacLeod", "Jonas Becker", "Kavya Rao", "Lucas Moreau",
    "Maya Cohen", "Nils Johansson", "Olivia Brennan", "Pablo Ortega",
)

_EXTRA_TAGS: tuple[str, ...] = (
    "endangered", "breeding-programme", "hand-reared", "visitor-favourite", "senior", "night-house",
    "enrichment-plan", "on-loan", "quarantine", "training",
)

_FIRST_DAY_BORN = date(1990, 1, 1)
_LAST_DAY_BORN = date(2025, 11, 30)
_FIRST_UPDATE = datetime(2025, 1, 1)
_UPDATE_WINDOW_SECONDS = 396 * 24 * 3600  # up to early February 2026


def _keeper(name: str) -> dict[str, str]:
    first, last = name.lower().split(" ", 1)
    return {"name": name, "email": f"{first}.{last.replace(' ', '-')}@zoo.example"}


def generate_animals(*, count: int = 300, seed: int = 7) -> list[dict]:
    """Return `count` realistic zoo records, the same ones for the same seed."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    rng = random.Random(seed)
    animals: list[dict] = []
    for number in range(1, count + 1):
        species, legs, lightest, heaviest, oldest, base_tags = rng.choice(_SPECIES)
        weight = rng.uniform(lightest, heaviest)
        age_days = rng.randint(30, oldest * 365)
        born = max(_LAST_DAY_BORN - timedelta(days=age_days), _FIRST_DAY_BORN)
        updated = _FIRST_UPDATE + timedelta(seconds=rng.randint(0, _UPDATE_WINDOW_SECONDS))
        extra_tags = rng.sample(_EXTRA_TAGS, k=rng.choice((0, 0, 1, 1, 2)))
        animals.append(
            {
                "id": number,
                "name": rng.choice(_NAMES),
                "species": species,
                "status": "active" if rng.random() < 0.85 else "retired",
                "legs": str(legs) if rng.random() < 1 / 3 else legs,
                "weightKg": round(weight, 3 if weight < 1 else 1),
                "born": born.isoformat(),
                "keeper": _keeper(rng.choice(_KEEPERS)),
                "tags": [*base_tags, *extra_tags],
                "updatedAt": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return animals


class _BadRequest(Exception):
    """A query parameter holds a value the API cannot use."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    source: SampleSource


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "SampleSource/1.0"

    def do_GET(self) -> None:  # the name http.server dispatches to
        """Answer one GET request with JSON."""
        source = self.server.source
        source._log_request(self.path)
        try:
            status, body = source._respond(path=self.path, host=self.headers.get("Host"))
        except _BadRequest as error:
            status, body = HTTPStatus.BAD_REQUEST, {"detail": str(error)}
        except Exception:
            self._send_json(status=HTTPStatus.INTERNAL_SERVER_ERROR, body={"detail": "Server error."})
            raise
        self._send_json(status=status, body=body)

    def _refuse_method(self) -> None:
        self.server.source._log_request(self.path)
        self._send_json(
            status=HTTPStatus.METHOD_NOT_ALLOWED,
            body={"detail": f'Method "{self.command}" not allowed.'},
            headers={"Allow": "GET"},
        )

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse_method

    def _send_json(self, *, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet: the tests run thousands of requests."""


def _moment(text: str) -> datetime | None:
    """Return an ISO 8601 moment (UTC when it names no offset), or None when it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _whole_number(params: dict[str, str], *, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise _BadRequest(f"{name} must be a whole number of at least 1, got {raw!r}.")
    return int(raw)


def _with_page(*, base: str, path: str, pairs: Sequence[tuple[str, str]], page: int | None) -> str:
    """Return the absolute URL of `path` with the query kept but `page` replaced (or dropped)."""
    kept = [(key, value) for key, value in pairs if key != "page"]
    if page is not None:
        kept.append(("page", str(page)))
    query = urlencode(sorted(kept, key=lambda pair: pair[0]))
    return f"{base}{path}?{query}" if query else f"{base}{path}"


class SampleSource:
    """Serve zoo records over HTTP from a daemon thread; mutate them while it runs."""

    def __init__(
        self,
        *,
        records: list[dict] | None = None,
        page_size: int = 50,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        self._lock = threading.Lock()
        self._records: list[dict] = copy.deepcopy(records) if records is not None else generate_animals()
        self._requests: list[str] = []
        self.page_size = page_size
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._base_url = ""

    # -- life cycle -------------------------------------------------------------------------------------

    def start(self) -> SampleSource:
        """Bind the port and serve in a daemon thread; return self."""
        if self._stopped:
            raise RuntimeError("a stopped SampleSource cannot be started again; create a new one")
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler)
        server.source = self
        self._server = server
        bound_host, bound_port = server.server_address[:2]
        self._base_url = f"http://{bound_host}:{bound_port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sample-source", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; do nothing when already stopped."""
        server, thread = self._server, self._thread
        self._stopped = True
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def wait(self, *, timeout: float | None = None) -> bool:
        """Block until the server stops or `timeout` seconds pass; return whether it stopped."""
        thread = self._thread
        deadline = None if timeout is None else time.monotonic() + timeout
        # Join in short steps so Ctrl-C reaches the main thread promptly.
        while thread is not None and thread.is_alive():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            thread.join(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
        return True

    def __enter__(self) -> SampleSource:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Return the base URL, e.g. "http://127.0.0.1:54321"."""
        if self._server is None:
            raise RuntimeError("the SampleSource is not running; call start() first")
        return self._base_url

    # -- records ----------------------------------------------------------------------------------------

    @property
    def records(self) -> list[dict]:
        """Return a copy of the records served right now; change them with the methods below."""
        with self._lock:
            return copy.deepcopy(self._records)

    def replace_records(self, records: Iterable[dict]) -> None:
        """Serve these records from the next request on."""
        fresh = copy.deepcopy(list(records))
        with self._lock:
            self._records = fresh

    def update_record(self, record_id: int | str, /, **changes: Any) -> dict:
        """Change fields of the record with this id; return a copy of it; raise KeyError when absent."""
        with self._lock:
            index = self._index_of(record_id)
            # Replace rather than mutate, so a response being written keeps a consistent record.
            updated = {**self._records[index], **copy.deepcopy(changes)}
            self._records[index] = updated
            return copy.deepcopy(updated)

    def remove_record(self, record_id: int | str, /) -> dict:
        """Remove the record with this id and return it; raise KeyError when absent."""
        with self._lock:
            return self._records.pop(self._index_of(record_id))

    def add_record(self, record: dict) -> None:
        """Append a record; raise ValueError when its id is missing or already served."""
        if "id" not in record:
            raise ValueError("a record needs an id")
        fresh = copy.deepcopy(record)
        with self._lock:
            if self._find(fresh["id"]) is not None:
                raise ValueError(f"a record with id {fresh['id']!r} already exists")
            self._records.append(fresh)

    def _find(self, record_id: object) -> int | None:
        wanted = str(record_id)
        for index, record in enumerate(self._records):
            if str(record.get("id")) == wanted:
                return index
        return None

    def _index_of(self, record_id: object) -> int:
        index = self._find(record_id)
        if index is None:
            raise KeyError(record_id)
        return index

    # -- request log ------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[str]:
        """Return the path and query of every request seen so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        """Forget the requests seen so far."""
        with self._lock:
            self._requests.clear()

    def _log_request(self, path: str) -> None:
        with self._lock:
            self._requests.append(path)

    # -- responses --------------------------------------------------------------------------------------

    def _respond(self, *, path: str, host: str | None) -> tuple[int, Any]:
        """Return the status and JSON body for a GET of `path` (path and query)."""
        parts = urlsplit(path)
        route = parts.path.rstrip("/") or "/"
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        params = dict(pairs)  # the last value of a repeated parameter wins
        with self._lock:
            records = list(self._records)
        if route == "/animals":
            base = f"http://{host}" if host else self._base_url
            if params.get("updated_since"):
                since = _moment(params["updated_since"])
                if since is None:
                    return HTTPStatus.BAD_REQUEST, {"updated_since": ["Enter a valid date/time."]}
                records = sorted(
                    (record for record in records if (_moment(str(record.get("updatedAt", ""))) or since) >= since),
                    key=lambda record: str(record.get("updatedAt", "")),
                )
            return HTTPStatus.OK, self._drf_page(records=records, base=base, path=parts.path, pairs=pairs)
        if route == "/api/zoo/animals":
            return HTTPStatus.OK, self._nested_page(records=records, params=params)
        if route == "/animals.json":
            return HTTPStatus.OK, records
        if route.startswith("/animals/") and route.count("/") == 2:
            wanted = route.removeprefix("/animals/")
            for record in records:
                if str(record.get("id")) == wanted:
                    return HTTPStatus.OK, record
        return HTTPStatus.NOT_FOUND, {"detail": "Not found."}

    def _drf_page(
        self, *, records: list[dict], base: str, path: str, pairs: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        params = dict(pairs)
        page = _whole_number(params, name="page", default=1)
        per_page = min(_whole_number(params, name="per_page", default=self.page_size), MAX_PAGE_SIZE)
        start = (page - 1) * per_page
        has_next = start + per_page < len(records)
        return {
            "count": len(records),
            "next": _with_page(base=base, path=path, pairs=pairs, page=page + 1) if has_next else None,
            # Like DRF, the link back to the first page carries no page parameter.
            "previous": (
                _with_page(base=base, path=path, pairs=pairs, page=page - 1 if page > 2 else None)
                if page > 1
                else None
            ),
            "results": records[start : start + per_page],
        }

    def _nested_page(self, *, records: list[dict], params: dict[str, str]) -> dict[str, Any]:
        page = _whole_number(params, name="page", default=1)
        start = (page - 1) * self.page_size
        return {
            "data": {"items": records[start : start + self.page_size]},
            "meta": {"page": page, "pages": math.ceil(len(records) / self.page_size), "total": len(records)},
        }


# -- running it alone ---------------------------------------------------------------------------------------


def serve(*, source: SampleSource, out: TextIO) -> None:
    """Print where the started source listens, block until Ctrl-C, then stop it."""
    url = source.url
    try:
        for line in (
            f"Sample source serving {len(source.records)} animals at {url} (Ctrl-C stops it)",
            f"  {url}/animals?page=1&per_page={source.page_size}",
            f"  {url}/animals/1",
            f"  {url}/api/zoo/animals?page=1",
            f"  {url}/animals.json",
        ):
            out.write(line + "\n")
        out.flush()
        source.wait()
    except KeyboardInterrupt:
        out.write("Stopped.\n")
        out.flush()
    finally:
        source.stop()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sample source from the command line until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m syncapp.sample_source", description="Serve a small zoo API until Ctrl-C."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port; 0 picks a free one (default: 8900)")
    parser.add_argument("--count", type=int, default=300, help="number of animals (default: 300)")
    parser.add_argument("--page-size", type=_positive, default=50, help="default per_page (default: 50)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated records (default: 7)")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error(f"--count must not be negative, got {args.count}")
    if args.page_size > MAX_PAGE_SIZE:
        parser.error(f"--page-size must be at most {MAX_PAGE_SIZE}, got {args.page_size}")
    source = SampleSource(
        records=generate_animals(count=args.count, seed=args.seed), page_size=args.page_size, port=args.port,
        host=args.host,
    )
    try:
        source.start()
    except OSError as error:
        print(f"Cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    serve(source=source, out=sys.stdout)
    return 0

if __name__ == "__main__":
    sys.exit(main())
