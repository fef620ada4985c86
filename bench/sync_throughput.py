"""Measure a first sync and an unchanged re-run of N records from the sample source.

    DATABASE_URL=postgresql://root@127.0.0.1:5432/bench .venv/bin/python bench/sync_throughput.py --count 10000

Tasks run in this process (no broker), so the numbers are the pipeline's own cost per object,
without Celery's transport. The database named in DATABASE_URL is emptied of this benchmark's data.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.pop("CELERY_BROKER_URL", None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from contracts.models import SynchronizationRun  # noqa: E402
from syncapp import configuration, synchronization  # noqa: E402
from syncapp.models import Object, Synchronization  # noqa: E402
from syncapp.sample_source import SampleSource, generate_animals  # noqa: E402


def timed_run(sync: Synchronization, **options) -> tuple[float, SynchronizationRun]:
    started = time.perf_counter()
    run = synchronization.run_start(synchronization=sync, **options)
    run.refresh_from_db()
    return time.perf_counter() - started, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    records = [{**record, "status": "active"} for record in generate_animals(count=args.count)]
    firsts, reruns = [], []
    with SampleSource(records=records, page_size=500) as source:
        bundle = configuration.bundle_load(Path(__file__).resolve().parent.parent / "examples" / "zoo.json")
        bundle["sources"][0]["location"] = source.url
        bundle["synchronizations"][0]["sourceConfig"]["query"] = {"per_page": 500}
        configuration.bundle_import(bundle)
        sync = Synchronization.objects.get(reference="animals")
        for _ in range(args.repeat):
            sync.contracts.all().delete()
            Object.objects.filter(schema=sync.target_schema).delete()
            seconds, run = timed_run(sync)
            assert run.created == args.count, run.counts
            firsts.append(seconds)
            seconds, run = timed_run(sync)
            assert run.unchanged == args.count, run.counts
            reruns.append(seconds)
    first, rerun = statistics.median(firsts), statistics.median(reruns)
    print(f"records {args.count}, database {django.db.connection.vendor}, median of {args.repeat}")
    print(f"first sync      {first:7.2f} s  {args.count / first:8.0f} objects/s")
    print(f"unchanged rerun {rerun:7.2f} s  {args.count / rerun:8.0f} objects/s  ({first / rerun:.1f}x faster)")


if __name__ == "__main__":
    main()
