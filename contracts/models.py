"""Contracts (one per synchronized object), runs (the sync log) and contract logs."""
from __future__ import annotations

import uuid

from django.db import models

from syncapp.fields import DocumentField
from syncapp.ids import uuid7
from syncapp.models import Synchronization


class SynchronizationRun(models.Model):
    """One run of a synchronization, with its counts."""

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        SCHEDULE = "schedule"
        FOLLOW_UP = "follow-up"
        API = "api"
        EVENT = "event"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        PARTIAL = "partial"
        CANCELLED = "cancelled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    ENDED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.PARTIAL, Status.CANCELLED)
    COUNT_FIELDS = ("found", "filtered", "unchanged", "created", "updated", "deleted", "invalid", "failed")

    reference = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    synchronization = models.ForeignKey(Synchronization, on_delete=models.CASCADE, related_name="runs")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_up_runs"
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    class Mode(models.TextChoices):
        # Every record of the source: what it did not see vanished (SYNC.md section 7).
        FULL = "full"
        # Only what changed since the stored cursor (sourceConfig.incremental): deletes nothing.
        INCREMENTAL = "incremental"

    is_test = models.BooleanField(default=False)
    is_forced = models.BooleanField(default=False)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.FULL)
    # The cursor value sent on the first page request of an incremental run, and the greatest value
    # this run saw in its records (stored on the synchronization when the run succeeds).
    cursor_sent = models.JSONField(null=True, blank=True)
    cursor_value = models.JSONField(null=True, blank=True)
    # Records without a usable cursor value: synced, but they do not move the cursor (a warning).
    cursor_missing = models.PositiveIntegerField(default=0)
    # Detail requests of sourceConfig.extraDataConfigs made for this run's objects, and those that failed.
    enrichments = models.PositiveIntegerField(default=0)
    enrichments_failed = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    found = models.PositiveIntegerField(default=0)
    filtered = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    pages_fetched = models.PositiveIntegerField(default=0)
    # Completion is tracked here, not with chords: the run ends when fetching has finished,
    # every page is processed and every queued object task has ended.
    fetch_finished = models.BooleanField(default=False)
    max_pages_reached = models.BooleanField(default=False)
    # The deletion of vanished objects was refused by deleteSafetyLimit: the run ends partial.
    deletion_refused = models.BooleanField(default=False)
    # Queued behind another active run of the same synchronization; started when that one ends.
    waiting = models.BooleanField(default=False)
    # Moved on by every page and object task; a running run without a recent heartbeat lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    objects_queued = models.PositiveIntegerField(default=0)
    objects_done = models.PositiveIntegerField(default=0)
    # Pages are judged in order: the next to judge is page pages_judged + 1. A judged page ends when it
    # is planned or fails; the run has read everything when the two counts meet. Counters, not queries
    # over page statuses, whose index keeps every earlier status until PostgreSQL vacuums it.
    pages_judged = models.PositiveIntegerField(default=0)
    pages_ended = models.PositiveIntegerField(default=0)
    # Calls repeated and tasks re-scheduled because of timeouts, lost connections, 5xx and rate limits,
    # and the seconds spent waiting for them and for the source's request budget (SYNC.md section 9).
    retries = models.PositiveIntegerField(default=0)
    waited_seconds = models.FloatField(default=0)
    # When the run's queued pages and unfinished objects were last sent again for lack of progress.
    resent_at = models.DateTimeField(null=True, blank=True)
    # A page or object of the run waits for a server that asked to be called again later (a Retry-After
    # beyond SYNC_MAX_RETRY_AFTER_SECONDS): the earliest moment one is due. No worker holds it meanwhile;
    # the resend sweep sends it when due, and the run is not failed as lost while it waits.
    deferred_until = models.DateTimeField(null=True, blank=True)
    # The origin ids a run is limited to (a push of the register objects that changed); empty: everything.
    scope = models.JSONField(default=list, blank=True)
    # The synchronizations whose writes caused this run, first to last (a push of objects that a run of the
    # last one wrote, itself caused by the one before, ...); empty for a run a person or a schedule started.
    # What this run writes carries it on, so a push never goes back to where its chain came from.
    push_origin = models.JSONField(default=list, blank=True)
    # The process running the run when its tasks run in process (host:pid:process start), so a run
    # whose process died is failed at the next start instead of after SYNC_RUN_STALE_SECONDS.
    # Empty for runs on Celery workers: there the heartbeat tells.
    owner = models.CharField(max_length=200, blank=True, editable=False)
    error_message = models.TextField(blank=True)
    report = models.JSONField(default=list, blank=True, help_text="Per-object outcome of a test run.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["synchronization", "status"])]
        permissions = [("cancel_run", "Can cancel runs")]

    def __str__(self) -> str:
        return f"{self.synchronization} run {self.pk} ({self.status})"

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNT_FIELDS}

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class RunPage(models.Model):
    """One page of a run: fetched by its own task, judged in page order, planned (syncapp.runs.pages)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        # Fetched ahead of the pages before it (sourceConfig.concurrency): its answer waits in
        # `payload` until every earlier page is judged.
        FETCHED = "fetched"
        # Judged in page order: part of the run, the next page decided; its objects are still to plan.
        JUDGED = "judged"
        DONE = "done"
        FAILED = "failed"
        # Fetched ahead, but an earlier page turned out to be the last: not part of the run.
        SKIPPED = "skipped"

    OPEN_STATUSES = (Status.QUEUED, Status.FETCHED, Status.JUDGED)

    # Indexed by the unique (run, number) constraint, the one index page lookups should use: a page is
    # found by its number, and with stale statistics the planner would rather walk the run's pages.
    run = models.ForeignKey(SynchronizationRun, on_delete=models.CASCADE, related_name="pages", db_index=False)
    number = models.PositiveIntegerField()
    request = models.JSONField(default=dict, help_text="What to ask the source for this page.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    object_count = models.PositiveIntegerField(default=0)
    # The greatest incremental cursor value among the page's records (null: none, or no cursor).
    cursor_value = models.JSONField(null=True, blank=True)
    # The answer of a page fetched ahead (JSON of {"request", "body", "headers", "url", "format"}), kept
    # until the page is judged and planned; emptied once it is planned. Text, not bytes: a bytes literal
    # travels to the database at twice its size.
    payload = models.TextField(null=True, blank=True, editable=False)
    error_message = models.TextField(blank=True)
    # Not to be fetched before this moment: the source answered with a Retry-After too long to wait out.
    not_before = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="unique_run_page")]

    def __str__(self) -> str:
        return f"page {self.number} of run {self.run_id}"


class RunChunk(models.Model):
    """Planned writes of a run, written by one task in one transaction (syncapp.runs.chunks).

    `items` holds what the writes need (contract id, hashes, the source and the mapped object), so a
    task message carries only ids, and a message a restarted broker lost is sent again from here.
    A chunk of one object is an object retried alone after a transient failure.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        DONE = "done"

    run = models.ForeignKey(SynchronizationRun, on_delete=models.CASCADE, related_name="chunks")
    page_number = models.PositiveIntegerField()
    size = models.PositiveIntegerField(default=0)
    # JSON of a list of planned writes; emptied when the chunk is done.
    items = models.TextField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # 0 for a chunk a page planned; n for the n-th retry of an object that failed for a passing reason.
    attempt = models.PositiveSmallIntegerField(default=0)
    # Items written so far, for targets written one object at a time outside our transactions (an API):
    # each item's outcome is recorded with this count, so a redelivered chunk goes on after the last one.
    progress = models.PositiveIntegerField(default=0)
    # Not to be written before this moment: the target answered with a Retry-After too long to wait out.
    not_before = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "id"]

    def __str__(self) -> str:
        return f"chunk {self.pk} of run {self.run_id} (page {self.page_number})"


class SynchronizationContract(models.Model):
    """What is known of one object: where it came from, where it went, and its hashes."""

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"
        SKIP = "skip"

    class Status(models.TextChoices):
        NEW = "new"
        SYNCED = "synced"
        INVALID = "invalid"
        FAILED = "failed"
        DELETED = "deleted"
        # Changed at the source and at the target since the last sync (two-way sync, conflictWinner manual).
        CONFLICT = "conflict"

    reference = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Indexed by the unique (synchronization, origin id) constraint.
    synchronization = models.ForeignKey(
        Synchronization, on_delete=models.CASCADE, related_name="contracts", db_index=False
    )
    origin_id = models.CharField(max_length=255)
    origin_hash = models.CharField(max_length=64, blank=True)
    # Fingerprint of the synchronization and mapping at the last write: a changed mapping re-writes.
    config_hash = models.CharField(max_length=64, blank=True)
    source_last_changed = models.DateTimeField(null=True, blank=True)
    source_last_checked = models.DateTimeField(null=True, blank=True)
    source_last_synced = models.DateTimeField(null=True, blank=True)
    target_id = models.CharField(max_length=255, null=True, blank=True)
    target_hash = models.CharField(max_length=64, blank=True)
    target_last_changed = models.DateTimeField(null=True, blank=True)
    target_last_synced = models.DateTimeField(null=True, blank=True)
    target_last_action = models.CharField(max_length=10, choices=Action.choices, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    last_error = models.TextField(blank=True)
    # The last run that saw this object at the source; objects not seen by a complete run vanished.
    # Both run pointers change on every run of every object: without an index or a database
    # constraint of their own (Django still nulls them when a run is deleted), those writes stay cheap.
    last_seen_run = models.ForeignKey(
        SynchronizationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False, db_constraint=False,
    )
    # The last run whose chunk wrote this contract: a redelivered chunk does nothing twice.
    last_processed_run = models.ForeignKey(
        SynchronizationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False, db_constraint=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["synchronization_id", "origin_id"]
        constraints = [
            models.UniqueConstraint(fields=["synchronization", "origin_id"], name="unique_contract_origin"),
        ]
        # Not (synchronization, target id): next to the unique (synchronization, origin id) index, the
        # planner could pick it for a page's contracts and walk the synchronization's every contract.
        indexes = [models.Index(fields=["target_id"], name="contract_target")]

    def __str__(self) -> str:
        return f"{self.synchronization_id}:{self.origin_id}"


class ContractLog(models.Model):
    """One object write or failure, with what came in and what went out.

    Logs are written a chunk at a time: their references are kept by Django (CASCADE, SET_NULL), not
    by database constraints, which would check three rows for every log inserted.
    """

    reference = models.UUIDField(default=uuid7, unique=True, editable=False)
    synchronization = models.ForeignKey(
        Synchronization, on_delete=models.CASCADE, related_name="logs", db_constraint=False
    )
    contract = models.ForeignKey(
        SynchronizationContract, null=True, blank=True, on_delete=models.SET_NULL, related_name="logs",
        db_constraint=False,
    )
    run = models.ForeignKey(
        SynchronizationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="logs",
        db_constraint=False,
    )
    origin_id = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=10, blank=True)
    source_object = DocumentField(null=True, blank=True)
    target_object = DocumentField(null=True, blank=True)
    # What a target API answered to the write, if it answered anything.
    response = DocumentField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action or self.status} {self.origin_id}"
