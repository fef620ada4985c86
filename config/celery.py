"""The Celery app; its settings are the CELERY_* names in config.settings."""
import gc
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("sync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@signals.task_prerun.connect
def database_connections_check(**kwargs) -> None:
    """Drop connections that broke or outlived their age before a task, as Django does before a request."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


@signals.before_task_publish.connect
def sent_at_stamp(headers: dict | None = None, **kwargs) -> None:
    """Stamp every task message with when it was sent: /metrics reads the age of the queue's oldest."""
    import time

    if headers is not None:
        # Set anew on every message, a task's retry too (it copies its request's headers): the age is the
        # message's own. Read by syncapp.health.queue_readings (SENT_AT_HEADER there).
        headers["sync_sent_at"] = time.time()


@signals.worker_process_init.connect
def startup_objects_freeze(**kwargs) -> None:
    """Leave the objects a worker process starts with (Django, the models, Celery: some 140,000) out of the
    garbage collector's full passes. Each full pass walked them all, a tenth of a second that a first sync of
    20,000 objects paid twice or more; they live as long as the process anyway. The process's startup garbage
    is collected first, so nothing that could be freed is kept."""
    gc.collect()
    gc.freeze()
