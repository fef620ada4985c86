"""Where a run's time goes: a first sync and an unchanged re-run, in process, under cProfile.

    .venv/bin/python bench/profile_run.py --records 20000
    .venv/bin/python bench/profile_run.py --records 20000 --cpu 3   # no profiler: wall and CPU time, median of 3

Uses the bench source (bench/source_api.py) and the machine's PostgreSQL (database sync_bench), runs
the tasks in this process (no broker, so no Celery overhead is in the figures) and prints, for each
case, the run's rate and the functions with the most time of their own and with the most time in
all they call, and the time of its own summed by part (PostgreSQL, the ORM, hashing, mapping ...).
With --cpu N it runs each case N times without the profiler and prints the medians of the wall time and
of this process's CPU time (what the run's Python costs, whatever else the machine does meanwhile).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("SYNC_ALLOWED_NETWORKS", "127.0.0.0/8")

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from throughput import Source, data_clear, synchronization  # noqa: E402 - sets up Django first

from contracts.models import SynchronizationRun  # noqa: E402
from syncapp import runs as sync_runs  # noqa: E402
from syncapp.models import Source as SourceRecord  # noqa: E402
from syncapp.models import Synchronization  # noqa: E402

# The parts a profile's own time is summed by: (part, does a function's file or name hold one of these).
PARTS = (
    ("PostgreSQL: waiting for its answers", ("connection.py:wait", "recv_into")),
    ("psycopg: sending, binding and quoting parameters, COPY rows", ("/psycopg/",)),
    ("Django: ORM and database backend", ("/django/db/",)),
    ("HTTP: requests, urllib3", ("/requests/", "/urllib3/", "http/client", "tenacity", "socket")),
    ("hashing and JSON writing (orjson dumps)", ("hashing.py", "orjson.dumps", "sha256", "hexdigest", "translate")),
    ("JSON parsing (orjson loads)", ("orjson.loads",)),
    ("mapping (templates, dot paths, casts)", ("mapping.py", "dotpath.py", "/jinja2/", "/twig/")),
    ("conditions (JSON Logic)", ("conditions.py", "json_logic")),
    ("the planner", ("planner.py",)),
    ("the register writer and its validation", ("targets/register.py", "jsonschema", "bulk.py", "ids.py")),
    ("the run's bookkeeping code (pages, chunks, runs, logs)", ("/syncapp/", "/contracts/", "/workers/")),
    ("Celery", ("/celery/", "/kombu/")),
)


def parts_print(profile: cProfile.Profile) -> None:
    """Print the profile's own time summed by part."""
    spent: Counter[str] = Counter()
    for (path, _, name), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
        where = f"{path}:{name}"
        part = next((part for part, marks in PARTS if any(mark in where for mark in marks)), "other (builtins, stdlib)")
        spent[part] += own
    total = sum(spent.values())
    print("by part (time of its own):\n```")
    for part, seconds in spent.most_common():
        print(f"{seconds:6.2f} s {seconds / total:4.0%}  {part}")
    print("```")


def timed(sync: Synchronization, *, title: str, repeat: int) -> None:
    """Run the case `repeat` times without the profiler; print the medians of wall and CPU time."""
    walls, cpus = [], []
    for _ in range(repeat):
        if title == "first sync":
            data_clear()
        cpu, started = time.process_time(), time.perf_counter()
        run = sync_runs.run_start(synchronization=sync)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        run = SynchronizationRun.objects.get(pk=run.pk)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{title}: {run.found:,} objects ({run.status}), median of {repeat}: {run.found / wall:,.0f} objects/s, "
          f"wall {wall:.2f} s, CPU of this process {cpu:.2f} s = {cpu / run.found * 1e6:.0f} us an object "
          f"(runs: {', '.join(f'{w:.1f}' for w in walls)} s wall, {', '.join(f'{c:.1f}' for c in cpus)} s CPU)")


def profiled(sync: Synchronization, *, title: str, top: int, save: Path | None = None) -> None:
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    run = sync_runs.run_start(synchronization=sync)
    profile.disable()
    seconds = time.perf_counter() - started
    run = SynchronizationRun.objects.get(pk=run.pk)
    if save is not None:
        profile.dump_stats(save / f"{title.replace(' ', '-')}.prof")  # for pstats' callers and callees
    print(f"\n## {title}: {run.found:,} objects in {seconds:.1f} s, {run.found / seconds:,.0f} objects/s "
          f"({run.status}; created {run.created}, unchanged {run.unchanged})\n")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        lines = out.getvalue().splitlines()
        start = next(index for index, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        print(f"by {order}:\n```")
        print("\n".join(lines[start:start + top + 1]))
        print("```")
    parts_print(profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", type=Path, help="a directory to write each case's cProfile stats (.prof) to")
    parser.add_argument("--cpu", type=int, metavar="N", help="no profiler: each case N times, medians of wall and CPU")
    args = parser.parse_args()
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    settings.TASKS_IN_PROCESS = True  # every task in this process, under the profiler
    call_command("migrate", verbosity=0)
    data_clear()
    Synchronization.objects.all().delete()
    # The bench's sources too: each run serves them on a new port, and a source whose location moved
    # keeps its credentials unsent until a user confirms them (a second run on the database failed).
    SourceRecord.objects.filter(reference__endswith="-api").delete()
    source = Source(records=args.records, log_dir=log_dir)
    try:
        sync = synchronization(reference="profile", source=source, concurrency=1,
                               pagination={"type": "page", "pageSizeParam": "per_page", "pageSize": 100,
                                           "totalPath": "count"})
        if args.cpu:
            timed(sync, title="first sync", repeat=args.cpu)
            timed(sync, title="unchanged re-run", repeat=args.cpu)
            return
        profiled(sync, title="first sync", top=args.top, save=args.save)
        profiled(sync, title="unchanged re-run", top=args.top, save=args.save)
    finally:
        source.process.stop()
        data_clear()


if __name__ == "__main__":
    main()
