"""A worker's peak memory while it syncs a CSV file of 20,000 rows and one of 200,000 rows.

    .venv/bin/python bench/file_memory.py                       # 20,000 and 200,000 rows, median of 3
    .venv/bin/python bench/file_memory.py --small 2000 --large 20000 --repeat 1   # a quick look

The acceptance of the file source: a file is read a page at a time, so ten times the rows must not
take more memory than a small margin. Generates the two CSV files (eight columns, about 100 bytes a
row), uploads each with a file source (the media root in a temporary directory), starts a real
Celery worker (concurrency 2) on the machine's Redis and PostgreSQL (database sync_bench, as
bench/throughput.py), and runs a first sync of each into the register, sampling the resident set of
the worker's largest process every 0.2 s. Prints the median peaks, their ratio and the rates.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

MEDIA = Path(tempfile.mkdtemp(prefix="file-bench-media-"))
# Read by the settings when throughput.py sets Django up, and handed to the worker it starts.
os.environ["SYNC_MEDIA_ROOT"] = str(MEDIA)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from django.core.files import File  # noqa: E402
from django.core.management import call_command  # noqa: E402
from throughput import QUEUE, ROOT, MemoryWatch, Process, data_clear, timed_run  # noqa: E402

from syncapp.configuration import bundle_import  # noqa: E402
from syncapp.models import Source, Synchronization  # noqa: E402

SCHEMA = {
    "type": "object", "required": ["name", "legs"],
    "properties": {"name": {"type": "string"}, "legs": {"type": "integer"}, "keeper": {"type": "string"}},
}
MAPPING = {"name": "name", "species": "species", "legs": "legs", "keeper": "keeper", "born": "born",
           "city": "city"}
COLUMNS = ["id", "name", "species", "legs", "keeper", "born", "city", "note"]


def csv_write(path: Path, *, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for number in range(rows):
            writer.writerow([
                number, f"animal {number}", ("lion", "zebra", "okapi")[number % 3], number % 5,
                f"keeper{number % 97}@zoo.example", f"20{number % 25:02d}-0{number % 9 + 1}-1{number % 10}",
                "Amsterdam, NL", "a quoted, comma-holding note" if number % 7 == 0 else "",
            ])


def synchronization(*, reference: str, path: Path, page_size: int) -> Synchronization:
    Synchronization.objects.filter(reference=reference).delete()
    Source.objects.filter(reference=f"{reference}-file").delete()
    with path.open("rb") as handle:
        Source.objects.create(reference=f"{reference}-file", name=reference, type="file",
                              file=File(handle, name=path.name))
    bundle_import({
        "registers": [{"reference": "filebench", "schemas": [{"reference": "animal", "schema": SCHEMA}]}],
        "mappings": [{"reference": "filebench-in", "mapping": MAPPING, "cast": {"legs": "int"}}],
        "synchronizations": [{
            "reference": reference, "name": reference, "sourceType": "file", "sourceId": f"{reference}-file",
            "sourceConfig": {"pageSize": page_size, "deleteSafetyLimit": "100%"},
            "sourceTargetMapping": "filebench-in", "targetType": "register/schema", "targetId": "filebench/animal",
        }],
    })
    return Synchronization.objects.get(reference=reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=1000, help="sourceConfig.pageSize")
    args = parser.parse_args()
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    data_clear()
    Synchronization.objects.filter(reference__startswith="file-").delete()
    files = {}
    for rows in (args.small, args.large):
        files[rows] = MEDIA / f"animals-{rows}.csv"
        csv_write(files[rows], rows=rows)
    worker = Process(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "--concurrency", "2",
         "--without-gossip", "--without-mingle", "--loglevel", "INFO", "--hostname", f"{QUEUE}@%h"],
        log=log_dir / "file-worker.log", env={"LOG_LEVEL": "WARNING"}, ready="ready",
    )
    memory = MemoryWatch(worker.process.pid)
    peaks: dict[int, list[float]] = {rows: [] for rows in files}
    rates: dict[int, list[float]] = {rows: [] for rows in files}
    load = os.getloadavg()
    try:
        syncs = {rows: synchronization(reference=f"file-{rows}", path=path, page_size=args.page_size)
                 for rows, path in files.items()}
        for repeat in range(args.repeat):
            for rows, path in files.items():
                sync = syncs[rows]
                data_clear()
                time.sleep(1)  # let the worker settle after the truncation
                memory.reset()
                seconds = timed_run(sync, expect={"created": rows})
                peaks[rows].append(memory.peak / 2**20)
                rates[rows].append(rows / seconds)
                print(f"repeat {repeat + 1}, {rows:,} rows ({path.stat().st_size / 2**20:.1f} MB): peak "
                      f"{peaks[rows][-1]:.0f} MB, {rates[rows][-1]:,.0f} rows/s", flush=True)
    finally:
        memory.stop()
        worker.stop()
        data_clear()
        Synchronization.objects.filter(reference__startswith="file-").delete()
        Source.objects.filter(reference__startswith="file-").delete()
        shutil.rmtree(MEDIA, ignore_errors=True)
    small, large = (statistics.median(peaks[rows]) for rows in (args.small, args.large))
    print()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load before {load[0]:.1f} "
          f"{load[1]:.1f} {load[2]:.1f}, pageSize {args.page_size}, median of {args.repeat}")
    print()
    print("| CSV rows | worker peak RSS | first sync |")
    print("|---|---|---|")
    for rows in (args.small, args.large):
        print(f"| {rows:,} | {statistics.median(peaks[rows]):.0f} MB | {statistics.median(rates[rows]):,.0f} rows/s |")
    print()
    print(f"ratio {large / small:.2f} ({large - small:+.0f} MB)")


if __name__ == "__main__":
    main()
