"""A local source API for the benchmarks: N generated records, by page number or next link.

    python bench/source_api.py --port 8950 --records 100000 [--latency-ms 20]

`GET /records?page=N&per_page=K` answers `{"count", "next", "results"}` (a page-number API with a
total, and a next link for those that follow links). Records are made from their id, about 730
bytes each, so a million need no memory; a page, once made, is kept (up to --cache-pages).
`GET /control?version=2` changes 10% of the records (every tenth id: its name and notes), `version=1`
changes them back.
"""
from __future__ import annotations

import argparse
import hashlib
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import orjson

SPECIES = ("Lion", "Koala", "Axolotl", "Snow leopard", "Red panda", "Capybara", "Komodo dragon", "Meerkat")
NAMES = ("Amara", "Bongo", "Chandra", "Dumisani", "Ebony", "Faraji", "Gigi", "Hodari", "Imani", "Jabari")
KEEPERS = ("Anna Kowalski", "Ben Okafor", "Carla Mendes", "David Nguyen", "Elif Yilmaz", "Femi Adeyemi")
NOTES = (
    "Eats at dawn, sleeps at noon, prefers the shade of the east enclosure and dislikes loud visitors. "
    "Weighed every second Monday; the keeper notes appetite, coat and mood in the daily log, and the vet "
    "sees it each spring."
)


def record(number: int, *, version: int) -> dict:
    """Return record `number` (1-based) as of `version`: about 730 bytes of JSON."""
    digest = hashlib.blake2b(number.to_bytes(8, "big"), digest_size=8).digest()
    keeper = KEEPERS[digest[2] % len(KEEPERS)]
    changed = version == 2 and number % 10 == 0
    return {
        "id": number,
        "name": f"{NAMES[digest[0] % len(NAMES)]} {number}" + (" the second" if changed else ""),
        "species": SPECIES[digest[1] % len(SPECIES)],
        "status": "active",
        "legs": str(digest[3] % 5) if number % 3 == 0 else digest[3] % 5,
        "weightKg": round(0.5 + digest[4] * 7.3 + digest[5] / 256, 2),
        "born": f"{1990 + digest[6] % 34}-{1 + digest[7] % 12:02d}-{1 + digest[0] % 28:02d}",
        "keeper": {"name": keeper, "email": keeper.lower().replace(" ", ".") + "@zoo.example"},
        "tags": ["mammal" if digest[1] % 2 else "reptile", "herbivore" if digest[2] % 2 else "carnivore"],
        "enclosure": {"zone": chr(65 + digest[3] % 6), "number": digest[4] % 40, "indoor": bool(digest[5] % 2)},
        "feeding": [{"at": f"{7 + slot * 5:02d}:00", "food": "pellets", "grams": 100 + digest[slot] * 3}
                    for slot in range(3)],
        "notes": NOTES + (" Moved to the new enclosure." if changed else ""),
        "revision": 2 if changed else 1,
        "source": {"system": "zoo-records", "region": "eu-west", "licence": "CC-BY-4.0"},
        "updatedAt": f"2026-{1 + digest[6] % 12:02d}-{1 + digest[7] % 28:02d}T12:00:00Z",
    }


class State:
    def __init__(self, *, records: int, latency: float, cache_pages: int):
        self.records = records
        self.latency = latency
        self.version = 1
        self.cache: OrderedDict[tuple, bytes] = OrderedDict()
        self.cache_pages = cache_pages
        self.lock = threading.Lock()

    def page(self, *, page: int, size: int, base: str) -> bytes:
        key = (self.version, page, size)
        with self.lock:
            cached = self.cache.get(key)
        if cached is not None:
            return cached
        start = (page - 1) * size + 1
        numbers = range(start, min(start + size, self.records + 1))
        more = start + size <= self.records
        body = orjson.dumps({
            "count": self.records,
            "next": f"{base}/records?page={page + 1}&per_page={size}" if more else None,
            "results": [record(number, version=self.version) for number in numbers],
        })
        with self.lock:
            self.cache[key] = body
            while len(self.cache) > self.cache_pages:
                self.cache.popitem(last=False)
        return body


def serve(*, port: int, records: int, latency: float, cache_pages: int) -> None:
    state = State(records=records, latency=latency, cache_pages=cache_pages)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real APIs

        def do_GET(self) -> None:  # the name http.server dispatches to
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            if parts.path == "/control":
                state.version = int(query.get("version", 1))
                with state.lock:
                    state.cache.clear()
                body = b'{"ok": true}'
            elif parts.path == "/records":
                if state.latency:
                    time.sleep(state.latency)
                body = state.page(page=int(query.get("page", 1)), size=int(query.get("per_page", 100)),
                                  base=f"http://127.0.0.1:{port}")
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--cache-pages", type=int, default=2500)
    args = parser.parse_args()
    serve(port=args.port, records=args.records, latency=args.latency_ms / 1000, cache_pages=args.cache_pages)


if __name__ == "__main__":
    main()
