"""What a worker process does once, when it starts."""
from __future__ import annotations

import gc

from celery import signals

from config import celery as celery_config


def test_a_worker_process_leaves_the_objects_it_starts_with_out_of_the_garbage_collectors_passes():
    assert celery_config.startup_objects_freeze in signals.worker_process_init._live_receivers(None)
    try:
        celery_config.startup_objects_freeze()

        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
