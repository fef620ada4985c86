"""Sources, mappings, synchronizations and the register (the built-in target store)."""
from __future__ import annotations

from django.conf import settings
from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

from syncapp import kinds
from syncapp.fields import DocumentField, SealedJSONField
from syncapp.ids import uuid7
from syncapp.mapping import JINJA2, LANGUAGES


def source_upload_path(instance: Source, filename: str) -> str:
    """Return where an uploaded source file is stored: its own folder, its name kept (the name tells the format)."""
    return f"sources/{uuid7().hex}/{filename}"


class Source(models.Model):
    """An external system objects come from, or go to."""

    reference = models.SlugField(max_length=120, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The kinds of source records registered (syncapp.sources): a new kind changes no model.
    type = models.CharField(max_length=20, choices=kinds.source_record_choices, default="api")
    location = models.CharField(
        max_length=500, blank=True,
        help_text="Base URL (api) or DSN (database) or the URL or path of the file (file; blank with an upload).",
    )
    # A file source's uploaded file, under SYNC_MEDIA_ROOT (syncapp/sources/file.py).
    file = models.FileField(upload_to=source_upload_path, blank=True, max_length=300)
    configuration = models.JSONField(
        default=dict, blank=True, help_text="Default headers, query, timeouts for every call."
    )
    # Write-only: never rendered back in admin, API or logs.
    # Encrypted at rest (syncapp.sealing); write-only in the admin, the API and exports.
    credentials = SealedJSONField(default=dict, blank=True)
    # The origin (scheme://host:port of the location) the credentials were set or confirmed for: they are
    # sent only there, so a location moved elsewhere waits for someone allowed to change the credentials
    # (syncapp.authentication.credentials_refusal).
    credentials_origin = models.CharField(max_length=300, blank=True, editable=False)
    # The OAuth2 access token of the credentials, shared by every worker: {"key", "token", "expiresAt"}.
    # Secret like the credentials, so no form, serializer or export names it.
    auth_token_cache = SealedJSONField(default=dict, blank=True, editable=False)
    is_enabled = models.BooleanField(default=True)
    rate_limit_limit = models.IntegerField(null=True, blank=True)
    rate_limit_remaining = models.IntegerField(null=True, blank=True)
    rate_limit_reset = models.DateTimeField(null=True, blank=True)
    rate_limit_window = models.IntegerField(null=True, blank=True, help_text="Seconds.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference"]
        permissions = [("change_source_credentials", "Can set, clear or confirm the credentials of a source")]

    def __str__(self) -> str:
        return self.name or self.reference


class Mapping(models.Model):
    """A transformation of one object into another."""

    reference = models.SlugField(max_length=120, unique=True)
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    mapping = models.JSONField(default=dict, blank=True)
    unset = models.JSONField(default=list, blank=True)
    cast = models.JSONField(default=dict, blank=True)
    pass_through = models.BooleanField(default=False)
    language = models.CharField(
        max_length=10, choices=[(name, name.capitalize()) for name in LANGUAGES], default=JINJA2,
        help_text="The language of the templates: jinja2, or twig (OpenConnector's).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference"]

    def __str__(self) -> str:
        return self.name or self.reference


class Register(models.Model):
    """A group of schemas in the built-in store."""

    reference = models.SlugField(max_length=120, unique=True)
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference"]

    def __str__(self) -> str:
        return self.name or self.reference


class Schema(models.Model):
    """A JSON Schema that the objects of a register are validated against."""

    register = models.ForeignKey(Register, on_delete=models.CASCADE, related_name="schemas")
    reference = models.SlugField(max_length=120)
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    schema = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["register__reference", "reference"]
        constraints = [
            models.UniqueConstraint(fields=["register", "reference"], name="unique_schema_reference"),
        ]

    def __str__(self) -> str:
        return self.path

    @property
    def path(self) -> str:
        return f"{self.register.reference}/{self.reference}"


class Object(models.Model):
    """A JSON document of one schema."""

    uuid = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    schema = models.ForeignKey(Schema, on_delete=models.PROTECT, related_name="stored_objects")
    data = DocumentField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "uuid"]
        indexes = [models.Index(fields=["schema", "created_at"])]

    def __str__(self) -> str:
        return str(self.uuid)

    @property
    def reference(self) -> str:
        return str(self.uuid)


class Rule(models.Model):
    """A step a synchronization takes with each object it writes (OpenConnector's rules, a synchronization's
    `actions`): before the write (after the mapping) or after it, when its conditions hold (syncapp.rules)."""

    class Timing(models.TextChoices):
        BEFORE = "before", "Before the write (after the mapping)"
        AFTER = "after", "After the write"

    reference = models.SlugField(max_length=120, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The kinds of rules registered (syncapp.rules): a new kind changes no model.
    type = models.CharField(max_length=30, choices=kinds.rule_choices)
    timing = models.CharField(max_length=10, choices=Timing.choices, default=Timing.BEFORE)
    order = models.IntegerField(default=0, help_text="Rules of a synchronization run by this number, lowest first.")
    conditions = models.JSONField(
        default=dict, blank=True, help_text="JSON Logic on the object: when the rule applies.",
    )
    # The settings of its type, declared by the type (syncapp/rules/): OpenConnector's configuration[type].
    configuration = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference"]

    def __str__(self) -> str:
        return self.name or self.reference


class Synchronization(models.Model):
    """Where objects come from, which count, how they are reshaped and where they go."""

    reference = models.SlugField(max_length=120, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The kinds of sources and targets registered (syncapp.sources, syncapp.targets).
    source_type = models.CharField(max_length=30, choices=kinds.reader_choices, default="api")
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.PROTECT, related_name="synchronizations"
    )
    source_schema = models.ForeignKey(
        Schema, null=True, blank=True, on_delete=models.PROTECT, related_name="outgoing_synchronizations"
    )
    source_config = models.JSONField(default=dict, blank=True)
    source_hash_mapping = models.ForeignKey(
        Mapping, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_target_mapping = models.ForeignKey(
        Mapping, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    conditions = models.JSONField(default=dict, blank=True)
    target_type = models.CharField(max_length=30, choices=kinds.writer_choices, default="register/schema")
    target_schema = models.ForeignKey(
        Schema, null=True, blank=True, on_delete=models.PROTECT, related_name="incoming_synchronizations"
    )
    target_source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.PROTECT, related_name="target_synchronizations"
    )
    target_config = models.JSONField(default=dict, blank=True)
    target_source_mapping = models.ForeignKey(
        Mapping, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    follow_ups = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="followed_by")
    # OpenConnector's `actions`: the rules run on each object written, by their order (then as listed).
    actions = models.ManyToManyField(
        Rule, through="SynchronizationAction", blank=True, related_name="synchronizations",
    )
    schedule = models.CharField(
        max_length=100, blank=True,
        help_text="Cron expression, e.g. */15 * * * *; a sixth field counts seconds (see SYNC_SCHEDULE_TICK_SECONDS)",
    )
    # The last time the schedule came due and was acted on (a run started, or the start skipped): each
    # due time is acted on once, whatever the number of beats (syncapp.schedules).
    schedule_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A due time whose start was skipped, because a run was still active or the start was refused.
    schedule_skips = models.PositiveIntegerField(default=0, editable=False)
    schedule_skipped_at = models.DateTimeField(null=True, blank=True, editable=False)
    schedule_skip_reason = models.TextField(blank=True, editable=False)
    # sourceConfig.incremental.fullSchedule: the last due time of the full-run schedule acted on.
    full_schedule_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Incremental reads (syncapp.incremental): the greatest cursor value a successful run saw, and the
    # cursorPath it was read from (a cursor of another path is not used).
    incremental_cursor = models.JSONField(null=True, blank=True, editable=False)
    incremental_cursor_path = models.CharField(max_length=500, blank=True, editable=False)
    incremental_cursor_at = models.DateTimeField(null=True, blank=True, editable=False)
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference"]
        permissions = [("run_synchronization", "Can start, test and queue runs")]

    def __str__(self) -> str:
        return self.name or self.reference


class SynchronizationAction(models.Model):
    """A rule in a synchronization's `actions`, at its place in the list."""

    synchronization = models.ForeignKey(Synchronization, on_delete=models.CASCADE, related_name="action_links")
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="action_links")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["synchronization", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["synchronization", "rule"], name="unique_synchronization_action"),
        ]

    def __str__(self) -> str:
        return f"{self.synchronization} → {self.rule}"


class RuleFilesStorage(LazyObject):
    """The storage of the STORAGES alias SYNC_RULE_FILES_STORAGE, looked up when first used and again after
    STORAGES or the alias changed (a model field keeps the storage it was given when its class was made)."""

    def _setup(self) -> None:
        self._wrapped = storages[settings.SYNC_RULE_FILES_STORAGE]


rule_files_storage = RuleFilesStorage()


@receiver(setting_changed)
def rule_files_storage_reset(*, setting: str, **kwargs) -> None:
    """Look the rules' storage up again once the settings that name it changed."""
    if setting in ("STORAGES", "SYNC_RULE_FILES_STORAGE", "MEDIA_ROOT"):
        rule_files_storage._wrapped = empty


def stored_files_storage():
    """Return the storage of files rules fetch or write: the STORAGES alias SYNC_RULE_FILES_STORAGE (default
    "default": the media root, or the bucket of SYNC_S3_BUCKET)."""
    return rule_files_storage


def stored_file_path(instance: StoredFile, filename: str) -> str:
    """Return where a stored file goes: a folder per object, one per file, its name kept."""
    return f"objects/{instance.object_id}/{uuid7().hex}/{filename}"


class StoredFile(models.Model):
    """A file that belongs to a register object: fetched by a `fetch_file` rule, or written by `write_file`."""

    uuid = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    object = models.ForeignKey(Object, on_delete=models.CASCADE, related_name="files")
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="files")
    # Where it was fetched from (secrets masked); blank for a file a write_file rule wrote.
    source_url = models.CharField(max_length=2000, blank=True)
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=200, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    tags = models.JSONField(default=list, blank=True)
    # What the source said of this version: sent back (If-None-Match, If-Modified-Since) to fetch it only
    # when it changed.
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    file = models.FileField(upload_to=stored_file_path, storage=stored_files_storage, max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["object", "name"]
        constraints = [models.UniqueConstraint(fields=["object", "name"], name="unique_stored_file_name")]
        indexes = [models.Index(fields=["object", "source_url"])]

    def __str__(self) -> str:
        return self.name

    @property
    def reference(self) -> str:
        """Return how an object's data names this file (the API's address of it)."""
        return f"/api/files/{self.uuid}/"


class OutboxChange(models.Model):
    """Changes of register objects waiting to be pushed, written in the transaction that made them.

    The register's writer records them (syncapp.outbox) and never calls the pushes above it; the
    pushes drain them after the transaction commits, so a rolled-back change pushes nothing and a
    committed one is pushed even when the task that should have drained it was lost.
    """

    schema = models.ForeignKey(Schema, on_delete=models.CASCADE, related_name="+")
    # [[object id, event], ...], event one of create, update, delete.
    changes = models.JSONField()
    # The synchronization whose run made the changes, None for a person's (the admin, the API): its
    # own source is not pushed to, so what came from there does not go back.
    written_by = models.ForeignKey(Synchronization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The synchronizations whose runs led to the changes, first to last (the last is `written_by`); empty
    # for a person's. A push does not go back into a schema or source this chain came from.
    origin = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{len(self.changes)} change(s) of schema {self.schema_id}"


class ApiToken(models.Model):
    """A key of the API (`Authorization: Token …`), stored as its SHA-256 digest: what the database holds
    does not authenticate. The key itself is shown once, when it is made (syncapp.tokens)."""

    digest = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=200, blank=True, help_text="What the token is for (a program, a machine).")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.user}: {self.name or 'API token'}"


class SchedulerHeartbeat(models.Model):
    """A scheduler that ticks: `sync serve` (which also runs the queued runs) or Celery beat's tick task.

    One row per process, moved on at every tick: the admin and `sync status` warn when none ticked lately,
    and a run whose owner was a `sync serve` that died is handed back to the next runner rather than failed.
    """

    class Kind(models.TextChoices):
        SERVE = "sync serve"
        BEAT = "celery beat"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    # The process as contracts.runs.process_identity spells it (host:pid:start), as runs name their owner.
    identity = models.CharField(max_length=200, unique=True)
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    ticked_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-ticked_at"]

    def __str__(self) -> str:
        return f"{self.kind} on {self.host} (pid {self.pid})"
