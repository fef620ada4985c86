"""Where a run's time goes: a first sync and an unchanged re-run, in process, under cProfile.

    .venv/bin/python bench/profile_run.py --records 20000

Uses the bench source (bench/source_api.py) and the machine's PostgreSQL (database sync_bench), runs
the tasks in this process (no broker, so no Celery overhead is in the figures) and prints, for each
case, the run's rate and the functions with the most time of their own and with the most time in
all they call.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", type=Path, help="a directory to write each case's cProfile stats (.prof) to")
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
        profiled(sync, title="first sync", top=args.top, save=args.save)
        profiled(sync, title="unchanged re-run", top=args.top, save=args.save)
    finally:
        source.process.stop()
        data_clear()


if __name__ == "__main__":
    main()
