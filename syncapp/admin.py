import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from contracts.models import SynchronizationRun
from contracts.runs import RunRefused
from syncapp import permissions, schedules
from syncapp import runs as sync_service
from syncapp.authentication import (
    credential_problems,
    credentials_bind,
    credentials_kind,
    credentials_refusal,
    location_origin,
)
from syncapp.charts import runs_chart_svg
from syncapp.conditions import conditions_normalize
from syncapp.configuration import synchronization_actions, synchronization_actions_set
from syncapp.errors import InvalidObject
from syncapp.mapping import JINJA2
from syncapp.models import (
    ApiToken,
    Mapping,
    Object,
    Register,
    Rule,
    SchedulerHeartbeat,
    Schema,
    Source,
    StoredFile,
    Synchronization,
)
from syncapp.outbound.masking import mask_url
from syncapp.rules import rule_configuration_schemas, rule_problems
from syncapp.sources import problems_by_field as source_problems_by_field
from syncapp.sources import source_config_schemas, source_configuration_problems, source_record_problems
from syncapp.sources.file import upload_problems
from syncapp.summaries import object_summary, run_failed_origin_ids, runs_chart_data
from syncapp.targets import target_config_schemas
from syncapp.targets.register import (
    check_json_schema,
    register_object_save,
    register_objects_delete,
    validate_register_object,
)
from syncapp.tokens import token_create
from syncapp.tryout import conditions_try, mapping_config_of, mapping_try
from syncapp.validation import (
    mapping_problems_by_field,
    problems_by_field,
    synchronization_document,
    synchronization_problems,
)
from syncapp.widgets import PrettyJSONTextarea, WriteOnlyTextarea
from workers import dispatch

JSON_WIDGETS = {models.JSONField: {"widget": PrettyJSONTextarea}}


def describe_config_keys(*, schemas: dict[str, dict[str, Any]], kind: str) -> str:
    """Return a help text naming the top-level keys each type declares, those of every type said once."""
    names = {type_: list(schema.get("properties", {})) for type_, schema in schemas.items()}
    shared = [name for name in next(iter(names.values()), []) if all(name in keys for keys in names.values())]
    parts = [f"every {kind} type: {', '.join(shared)}"] if shared and len(names) > 1 else []
    parts += [
        f"{type_}: {', '.join(name for name in keys if name not in shared) or 'none'}" for type_, keys in names.items()
    ]
    return (
        f"The keys of the chosen {kind} type (docs/configuration.md describes each): the editor offers them as you "
        f"type (and on Ctrl-Space), shows what a key means on hover and marks a key that does not fit. Keys of "
        f"{'; '.join(parts)}."
    )


class EmptyJSONForm(forms.ModelForm):
    """A cleared JSON textarea saves the field's empty default ({} or []), not NULL."""

    def clean(self):
        cleaned = super().clean()
        for field in self._meta.model._meta.concrete_fields:
            cleared = field.name in cleaned and cleaned[field.name] is None
            if cleared and isinstance(field, models.JSONField) and callable(field.default):
                cleaned[field.name] = field.default()
        return cleaned


def _origin_shown(origin: str) -> str:
    """Return an origin as a form's help says it: host and port, then the scheme (not a link to follow)."""
    scheme, _, host = origin.partition("://")
    return f"{host} ({scheme})" if host else "no origin"


class SourceForm(EmptyJSONForm):
    """Credentials are write-only: the form never shows them, and a blank field keeps them."""

    new_credentials = forms.JSONField(
        required=False,
        label="Credentials",
        help_text=(
            'Write-only. Leave empty to keep the stored credentials. E.g. {"type": "bearer", "token": "..."}, '
            '{"type": "apiKey", "in": "header", "name": "X-API-Key", "value": "..."}, '
            '{"type": "basic", "username": "...", "password": "..."}, '
            '{"type": "oauth2", "tokenUrl": "...", "clientId": "...", "clientSecret": "...", "scope": "..."}; '
            'a database source: {"password": "..."} (and "username" if not the URL\'s)'
        ),
        widget=WriteOnlyTextarea(attrs={"rows": 3}),
    )
    clear_credentials = forms.BooleanField(
        required=False, label="Clear the credentials", help_text="Remove the stored credentials when saving.",
    )
    confirm_credentials = forms.BooleanField(
        required=False, label="Confirm the credentials",
        help_text="Send the stored credentials to this location's origin (scheme, host and port) from now on.",
    )
    # Whether the user may set, clear or confirm credentials (SourceAdmin.get_form says, per request).
    may_change_credentials = False

    class Meta:
        model = Source
        fields = ["reference", "name", "description", "type", "location", "file", "configuration", "is_enabled"]
        help_texts = {
            "file": "A file source's CSV, NDJSON or JSON file (.csv, .tsv, .ndjson, .jsonl, .json), read by the "
                    "workers; or leave it empty and give the file's URL or an allowed path as the location.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.credentials if self.instance.pk else None
        state = f"Stored: set ({credentials_kind(stored)})." if stored else "Stored: not set."
        if stored and credentials_refusal(self.instance) is not None:
            state += (
                f" Not sent: confirmed for {_origin_shown(self.instance.credentials_origin)}, but the location is "
                f"now at {_origin_shown(location_origin(self.instance.location))}; tick \"Confirm the credentials\" "
                "to send them there."
            )
        elif stored:
            state += f" Sent only to {_origin_shown(self.instance.credentials_origin)}."
        self.fields["new_credentials"].help_text = f"{state} {self.fields['new_credentials'].help_text}"

    def clean_new_credentials(self):
        value = self.cleaned_data.get("new_credentials")
        problems = credential_problems(value) if value else []
        if problems:
            raise forms.ValidationError(problems)
        return value

    def clean(self):
        cleaned = super().clean()
        if not self.may_change_credentials:
            for name in ("new_credentials", "clear_credentials", "confirm_credentials"):
                if cleaned.get(name):
                    # Not at the field: a user without the permission is not shown the credentials' fields.
                    self.add_error(None, f"{self.fields[name].label}: needs the permission to set, clear or confirm "
                                         "the credentials of a source")
        kind = cleaned.get("type", "api")
        # The upload of this form (False: its "clear" box is ticked), else the one stored.
        upload = cleaned.get("file")
        has_upload = bool(upload) or (upload is None and bool(self.instance.file))
        if "location" in cleaned:
            problems = source_record_problems(
                kind=kind, location=cleaned.get("location") or "", has_upload=has_upload,
                credentials=cleaned.get("new_credentials") or None,
            )
            for field, messages_ in source_problems_by_field(problems).items():
                for message in messages_:
                    self.add_error("new_credentials" if field == "credentials" else field, message)
        for problem in upload_problems(upload=upload, kind=kind):
            self.add_error("file", problem)
        if "configuration" in cleaned:
            for problem in source_configuration_problems(kind=kind, configuration=cleaned["configuration"]):
                self.add_error("configuration", problem)
        return cleaned

    def save(self, commit: bool = True):
        source = super().save(commit=False)
        if self.cleaned_data.get("new_credentials"):
            source.credentials = self.cleaned_data["new_credentials"]
            credentials_bind(source)
        elif self.cleaned_data.get("clear_credentials"):
            source.credentials = {}
            source.auth_token_cache = {}
            credentials_bind(source)
        elif self.cleaned_data.get("confirm_credentials"):
            credentials_bind(source)
        if commit:
            source.save()
        return source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_WIDGETS
    form = SourceForm
    list_display = ["reference", "name", "type", "location_shown", "is_enabled", "rate_limit_remaining"]
    list_filter = ["type", "is_enabled"]
    search_fields = ["reference", "name", "location"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        may = request.user.has_perm(permissions.CHANGE_CREDENTIALS)
        return type(form.__name__, (form,), {"may_change_credentials": may})

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if request.user.has_perm(permissions.CHANGE_CREDENTIALS):
            return fields
        return [name for name in fields if name not in ("new_credentials", "clear_credentials", "confirm_credentials")]

    @admin.display(description="Location", ordering="location")
    def location_shown(self, source: Source) -> str:
        # A password is refused in a location when saved; one stored otherwise is still not shown.
        return mask_url(source.location)


class MappingForm(EmptyJSONForm):
    class Meta:
        model = Mapping
        fields = ["reference", "name", "description", "language", "mapping", "unset", "cast", "pass_through"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A form posted without a language (an older page, a script) keeps the default one.
        if "language" in self.fields:  # not there when the user may only view
            self.fields["language"].required = False

    def clean_language(self):
        return self.cleaned_data.get("language") or JINJA2

    def clean(self):
        cleaned = super().clean()
        config = {
            "mapping": cleaned.get("mapping") if cleaned.get("mapping") is not None else {},
            "unset": cleaned.get("unset") if cleaned.get("unset") is not None else [],
            "cast": cleaned.get("cast") if cleaned.get("cast") is not None else {},
            "passThrough": cleaned.get("pass_through", False),
            "language": cleaned.get("language") or JINJA2,
        }
        for field, problems in mapping_problems_by_field(config=config, reference=cleaned.get("reference")).items():
            for problem in problems:
                self.add_error(field, problem)
        return cleaned


class TryForm(forms.Form):
    sample = forms.JSONField(
        label="Sample input", initial=dict, widget=PrettyJSONTextarea(attrs={"rows": 12}),
        help_text="A JSON object as the source would send it.",
    )


def _try_page(request, *, title: str, subject, back_url: str, explanation: str, run) -> TemplateResponse:
    form = TryForm(request.POST or None)
    outcome = None
    if request.method == "POST" and form.is_valid():
        outcome = run(form.cleaned_data["sample"])
    result = (outcome or {}).get("result")
    return TemplateResponse(request, "admin/syncapp/try.html", {
        **admin.site.each_context(request),
        "title": title, "subject": subject, "back_url": back_url, "explanation": explanation,
        "form": form, "outcome": outcome,
        "outcome_json": json.dumps(result, indent=2, ensure_ascii=False, default=str),
    })


@admin.register(Mapping)
class MappingAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_WIDGETS
    form = MappingForm
    list_display = ["reference", "name", "language", "pass_through", "updated_at"]
    search_fields = ["reference", "name"]
    readonly_fields = ["try_it"]

    @admin.display(description="Try it")
    def try_it(self, mapping: Mapping) -> str:
        if mapping.pk is None:
            return "Save the mapping first."
        url = reverse("admin:syncapp_mapping_try", args=[mapping.pk])
        return format_html('<a href="{}">Run this mapping on a sample input</a>', url)

    def get_urls(self):
        view = self.admin_site.admin_view(self.try_view)
        return [path("<int:pk>/try/", view, name="syncapp_mapping_try"), *super().get_urls()]

    def try_view(self, request, pk: int):
        mapping = get_object_or_404(Mapping, pk=pk)
        if not self.has_view_permission(request, mapping):
            raise PermissionDenied  # as the API's try of a mapping: only who may read the mapping
        return _try_page(
            request, title=f"Try mapping {mapping.reference}", subject=mapping,
            back_url=reverse("admin:syncapp_mapping_change", args=[pk]),
            explanation="The mapping as saved is applied to the sample; nothing is stored.",
            run=lambda sample: mapping_try(config=mapping_config_of(mapping), sample=sample),
        )


class SchemaForm(forms.ModelForm):
    class Meta:
        model = Schema
        fields = ["register", "reference", "name", "description", "schema"]

    def clean_schema(self):
        schema = self.cleaned_data.get("schema")
        for problem in check_json_schema(schema):
            self.add_error("schema", problem)
        return schema


class SchemaInline(admin.TabularInline):
    model = Schema
    formfield_overrides = JSON_WIDGETS
    form = SchemaForm
    extra = 0


@admin.register(Register)
class RegisterAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_WIDGETS
    list_display = ["reference", "name"]
    inlines = [SchemaInline]


@admin.register(Schema)
class SchemaAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_WIDGETS
    form = SchemaForm
    list_display = ["reference", "register", "name"]
    list_filter = ["register"]


class ObjectForm(forms.ModelForm):
    class Meta:
        model = Object
        fields = ["schema", "data"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("schema") is not None and "data" in cleaned:
            try:
                validate_register_object(schema=cleaned["schema"], data=cleaned["data"])
            except InvalidObject as error:
                self.add_error("data", str(error))
        return cleaned


@admin.register(Object)
class ObjectAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_WIDGETS
    form = ObjectForm
    list_display = ["summary", "schema", "updated_at", "uuid"]
    list_display_links = ["summary"]
    list_select_related = ["schema__register"]
    list_filter = ["schema", "updated_at"]
    # Content too: the document's text (PostgreSQL and SQLite both compare JSON as text here).
    search_fields = ["uuid", "data"]
    date_hierarchy = "updated_at"
    readonly_fields = ["uuid", "created_at", "updated_at"]

    @admin.display(description="Object")
    def summary(self, obj: Object) -> str:
        return object_summary(data=obj.data, schema=obj.schema.schema)

    # Objects are written by the register's writer only (syncapp.targets.register).
    def save_model(self, request, obj, form, change) -> None:
        register_object_save(obj=obj)

    def delete_model(self, request, obj) -> None:
        register_objects_delete(objects=[obj])

    def delete_queryset(self, request, queryset) -> None:
        register_objects_delete(objects=list(queryset))


class SynchronizationForm(EmptyJSONForm):
    # OpenConnector's `actions`: an ordered list, which a multiple choice does not keep.
    actions = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The rules run on each object written, by reference, one a line: they run by their order, then "
                  "as listed here.",
    )

    class Meta:
        model = Synchronization
        fields = [
            "reference", "name", "description", "source_type", "source", "source_schema", "source_config",
            "source_hash_mapping", "source_target_mapping", "conditions", "target_type", "target_schema",
            "target_source", "target_config", "target_source_mapping", "follow_ups", "schedule", "is_enabled",
        ]
        # Edited against the schema of the chosen type (__init__), in the admin or not.
        widgets = {"source_config": PrettyJSONTextarea, "target_config": PrettyJSONTextarea}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field, schemas, kind, select in (
            ("source_config", source_config_schemas(), "source", "#id_source_type"),
            ("target_config", target_config_schemas(), "target", "#id_target_type"),
        ):
            if field not in self.fields:
                continue  # shown read-only (a user who may only view): no editor, no help to type by
            self.fields[field].help_text = describe_config_keys(schemas=schemas, kind=kind)
            self.fields[field].widget.use_schemas(schemas=schemas, selector=select)
        # The instance's rules as references, one a line (model_to_dict would give the records).
        self.initial["actions"] = "\n".join(synchronization_actions(self.instance)) if self.instance.pk else ""

    def clean_actions(self) -> list[str] | None:
        """Return the rules' references as listed; None when the form did not send the field (kept as saved)."""
        if "actions" not in self.data:
            return None
        return [line.strip() for line in self.cleaned_data.get("actions", "").replace(",", "\n").splitlines()
                if line.strip()]

    def clean_source_config(self):
        return self.cleaned_data.get("source_config") or {}

    def clean_conditions(self):
        return conditions_normalize(self.cleaned_data.get("conditions"))  # checked with the rest in clean

    def clean(self):
        cleaned = super().clean()
        if any(name in self.errors for name in ("source_type", "target_type", "source_config", "target_config")):
            return cleaned  # the field itself is refused already
        values = self._values_with_saved(cleaned)
        actions = cleaned.get("actions")
        document = synchronization_document(
            values, follow_ups=[sync.reference for sync in values.get("follow_ups") or []],
            actions=actions if actions is not None else (
                synchronization_actions(self.instance) if self.instance.pk else []),
        )
        read_changed = bool({"source_type", "source", "source_config"} & set(self.changed_data))
        problems = synchronization_problems(
            document, previous_reference=self.instance.reference or None,
            read_changed=not self.instance.pk or read_changed,
        )
        for field, messages_ in problems_by_field(problems, document=document).items():
            for message in messages_:
                # A problem of a field shown read-only is the form's: add_error knows only editable fields.
                self.add_error(field if field in self.fields else None, message)
        return cleaned

    def _values_with_saved(self, cleaned: dict) -> dict:
        """Return the form's values, and the saved ones of the fields it does not edit (shown read-only)."""
        values = dict(cleaned)
        for name in SynchronizationForm.Meta.fields:
            if name in self.fields:
                continue
            if name == "follow_ups":
                values[name] = list(self.instance.follow_ups.all()) if self.instance.pk else []
            else:
                values[name] = getattr(self.instance, name, None)
        return values


class RuleForm(EmptyJSONForm):
    class Meta:
        model = Rule
        fields = ["reference", "name", "description", "type", "timing", "order", "conditions", "configuration"]
        # Edited against the schema of the chosen type (__init__).
        widgets = {"configuration": PrettyJSONTextarea}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "configuration" in self.fields:
            schemas = rule_configuration_schemas()
            self.fields["configuration"].help_text = describe_config_keys(schemas=schemas, kind="rule")
            self.fields["configuration"].widget.use_schemas(schemas=schemas, selector="#id_type")

    def clean_conditions(self):
        return conditions_normalize(self.cleaned_data.get("conditions"))  # checked with the rest in clean

    def clean(self):
        cleaned = super().clean()
        if "type" in self.errors:
            return cleaned
        values = {name: cleaned.get(name, getattr(self.instance, name, None))
                  for name in ("type", "timing", "conditions", "configuration")}
        for problem in rule_problems(
            rule_type=values["type"], timing=values["timing"] or Rule.Timing.BEFORE,
            conditions=values["conditions"] or {}, configuration=values["configuration"] or {},
        ):
            where, _, message = problem.partition(": ")
            field = where.split(".", 1)[0].split("[", 1)[0]
            self.add_error(field if field in self.fields else None, problem if where != field else message)
        return cleaned


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_WIDGETS
    form = RuleForm
    list_display = ["reference", "name", "type", "timing", "order"]
    list_filter = ["type", "timing"]
    search_fields = ["reference", "name"]


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    """Files that belong to register objects, fetched or written by rules: records the service keeps."""

    list_display = ["name", "object", "content_type", "size", "tags", "updated_at"]
    list_filter = ["content_type", "rule"]
    search_fields = ["name", "source_url", "object__uuid"]
    readonly_fields = [field.name for field in StoredFile._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _cancel_button(run: SynchronizationRun) -> str:
    """Return a Cancel link for an active run, to the page that asks for confirmation, then comes back here."""
    if run.status not in SynchronizationRun.ACTIVE_STATUSES:
        return ""
    url = reverse("admin:contracts_synchronizationrun_cancel", args=[run.pk]) + "?from=synchronization"
    return format_html('<a class="button" href="{}">Cancel</a>', url)


@admin.register(Synchronization)
class SynchronizationAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_WIDGETS
    form = SynchronizationForm
    # Narrow enough for the list beside the filters: the schedule and its next run share a column, which says
    # so of a disabled synchronization (is_enabled is also a filter).
    list_display = ["reference", "name", "source", "target", "schedule_shown", "last_run"]
    list_filter = ["is_enabled", "source_type", "target_type"]
    search_fields = ["reference", "name"]

    def save_related(self, request, form, formsets, change) -> None:
        # `actions` is ordered (syncapp.models.SynchronizationAction): set here, not as a plain many-to-many.
        actions = form.cleaned_data.pop("actions", None)
        super().save_related(request, form, formsets, change)
        if actions is not None:
            synchronization_actions_set(form.instance, actions)

    def get_queryset(self, request):
        last = SynchronizationRun.objects.filter(synchronization=OuterRef("pk"), is_test=False).order_by(
            "-created_at", "-id"
        )
        return super().get_queryset(request).annotate(
            last_run_id=Subquery(last.values("pk")[:1]), last_run_status=Subquery(last.values("status")[:1])
        )

    @admin.display(description="Last run")
    def last_run(self, sync: Synchronization) -> str:
        if getattr(sync, "last_run_id", None) is None:
            return "-"
        return format_html(
            '<a href="{}">{} {}</a>', reverse("admin:contracts_synchronizationrun_change", args=[sync.last_run_id]),
            sync.last_run_id, sync.last_run_status,
        )

    # -- schedules: when each fires next, and whether anything ticks (syncapp.schedules) -----------------

    @admin.display(description="Schedule", ordering="schedule")
    def schedule_shown(self, sync: Synchronization) -> str:
        if not sync.is_enabled:
            return format_html('<span style="white-space:nowrap">{}</span><br><small>disabled</small>',
                               sync.schedule or "-")
        next_run = self.next_run(sync)
        if next_run == "-":
            return sync.schedule or "-"
        # Its date and its time each on one line, when the column is narrow.
        day, _, time_of_day = next_run.partition(" ")
        return format_html('<span style="white-space:nowrap">{}</span><br><small>next <span style="white-space:'
                           'nowrap">{}</span> <span style="white-space:nowrap">{}</span></small>',
                           sync.schedule or "-", day, time_of_day)

    @admin.display(description="Target", ordering="target_schema")
    def target(self, sync: Synchronization) -> str:
        return str(sync.target_schema) if sync.target_schema_id else sync.target_type

    @admin.display(description="Next run")
    def next_run(self, sync: Synchronization) -> str:
        due = schedules.synchronization_next_run(sync)
        return f"{timezone.localtime(due):%Y-%m-%d %H:%M:%S %Z}" if due else "-"

    @admin.display(description="Schedules last ticked")
    def scheduler_last_tick(self, sync: Synchronization) -> str:
        last = SchedulerHeartbeat.objects.order_by("-ticked_at").first()
        return f"{timezone.localtime(last.ticked_at):%Y-%m-%d %H:%M:%S %Z} by {last}" if last else "never"

    def _scheduler_warn(self, request) -> None:
        warning = schedules.scheduler_warning()
        if warning and request.method == "GET":
            self.message_user(request, warning, messages.WARNING)

    def changelist_view(self, request, extra_context=None):
        self._scheduler_warn(request)
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        self._scheduler_warn(request)
        return super().changeform_view(request, object_id, form_url, extra_context)

    filter_horizontal = ["follow_ups"]
    readonly_fields = ["tools", "next_run", "scheduler_last_tick", "schedule_checked_at", "schedule_skips",
                       "schedule_skipped_at", "schedule_skip_reason",
                       "incremental_cursor", "incremental_cursor_path", "incremental_cursor_at",
                       "full_schedule_checked_at"]
    actions = ["run_now", "run_full"]

    @admin.display(description="Run and try")
    def tools(self, sync: Synchronization) -> str:
        if sync.pk is None:
            return "Save the synchronization first."
        # The button posts the change form (and its CSRF token) to the run view: forms do not nest.
        buttons = format_html(
            '<button type="submit" class="button" formaction="{}" formmethod="post" name="_run_now">Run now'
            '</button>{} <button type="submit" class="button" formaction="{}" formmethod="post" name="_test">'
            'Test sync</button> <a class="button" href="{}">Try conditions</a> '
            '<a href="{}">All runs</a>',
            reverse("admin:syncapp_synchronization_run", args=[sync.pk]),
            format_html(
                ' <button type="submit" class="button" formaction="{}" formmethod="post" name="_run_full">'
                "Full run</button>", reverse("admin:syncapp_synchronization_run_full", args=[sync.pk]),
            ) if (sync.source_config or {}).get("incremental") else "",
            reverse("admin:syncapp_synchronization_test", args=[sync.pk]),
            reverse("admin:syncapp_synchronization_try_conditions", args=[sync.pk]),
            reverse("admin:contracts_synchronizationrun_changelist") + f"?synchronization__id__exact={sync.pk}",
        )
        rows = format_html_join(
            "", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (reverse("admin:contracts_synchronizationrun_change", args=[run.pk]), run.pk, run.status,
                 run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                 ", ".join(f"{name} {value}" for name, value in run.counts.items() if value) or "-",
                 f"{run.duration_seconds:.1f} s" if run.duration_seconds is not None else "-",
                 _cancel_button(run))
                for run in sync.runs.order_by("-created_at", "-id")[:5]
            ),
        )
        table = format_html(
            '<table style="margin-top:1em"><thead><tr><th>Run</th><th>Status</th><th>Created</th><th>Counts</th>'
            "<th>Duration</th><th></th></tr></thead><tbody>{}</tbody></table>", rows,
        ) if rows else ""
        return format_html("{}{}", buttons, table)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        after = fields.index("tools") + 1 if "tools" in fields else 0
        return [*fields[:after], "history", *fields[after:]]

    @admin.display(description="Last runs")
    def history(self, sync: Synchronization) -> str:
        if sync.pk is None:
            return "-"
        chart = runs_chart_data(
            synchronization=sync, url_of=lambda pk: reverse("admin:contracts_synchronizationrun_change", args=[pk])
        )
        if not chart:
            return "No run yet."
        return format_html(
            '<div class="runs-history">{}<p style="margin:4px 0 0;color:var(--body-quiet-color)">The last {} runs, '
            "oldest first: their duration, objects per second and objects written, and each one's status (blue: "
            "active). Point at a run for its figures, click for its page.</p></div>",
            mark_safe(runs_chart_svg(runs=chart)),  # noqa: S308 - built with every text escaped (syncapp.charts)
            len(chart),
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/run/", wrap(self.run_view), name="syncapp_synchronization_run"),
            path("<int:pk>/retry-failed/<int:run_pk>/", wrap(self.retry_failed_view),
                 name="syncapp_synchronization_retry_failed"),
            path("<int:pk>/run-full/", wrap(self.run_full_view), name="syncapp_synchronization_run_full"),
            path("<int:pk>/test/", wrap(self.test_view), name="syncapp_synchronization_test"),
            path("<int:pk>/try-conditions/", wrap(self.try_conditions_view),
                 name="syncapp_synchronization_try_conditions"),
            *super().get_urls(),
        ]

    def has_run_permission(self, request) -> bool:
        return request.user.has_perm(permissions.RUN)

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request, queryset) -> None:
        for sync in queryset:
            self._start(request, sync)

    @admin.action(description="Full run (every record; deletes what vanished)", permissions=["run"])
    def run_full(self, request, queryset) -> None:
        for sync in queryset:
            self._start(request, sync, full=True)

    def _start(self, request, sync: Synchronization, *, full: bool = False, scope: list[str] | None = None):
        """Queue a run: its tasks go to the workers, or (tasks in process) to the runner, `sync serve`: never into
        this request, nor into this process, whose end would leave the run unfinished."""
        try:
            with dispatch.for_the_runner():
                run = sync_service.run_start(
                    synchronization=sync, trigger=SynchronizationRun.Trigger.MANUAL, full=full, scope=scope
                )
        except (RunRefused, sync_service.ConfigurationError) as error:
            self.message_user(request, f"{sync.reference}: {error}", messages.ERROR)
            return None
        self.message_user(request, f"{sync.reference}: {run.mode} run {run.pk} queued", messages.SUCCESS)
        return run

    def run_full_view(self, request, pk: int):
        return self.run_view(request, pk, full=True)

    def run_view(self, request, pk: int, *, full: bool = False):
        sync = get_object_or_404(Synchronization, pk=pk)
        if request.method != "POST" or not self.has_run_permission(request):
            raise PermissionDenied
        run = self._start(request, sync, full=full)
        if run is None:
            return redirect("admin:syncapp_synchronization_change", pk)
        return redirect("admin:contracts_synchronizationrun_change", run.pk)

    def retry_failed_view(self, request, pk: int, run_pk: int):
        """Start a run of the objects that run `run_pk` did not write (failed or invalid), by their origin ids."""
        sync = get_object_or_404(Synchronization, pk=pk)
        failed_run = get_object_or_404(SynchronizationRun, pk=run_pk, synchronization=sync)
        if request.method != "POST" or not self.has_run_permission(request):
            raise PermissionDenied
        origin_ids = run_failed_origin_ids(run=failed_run)
        if not origin_ids:
            self.message_user(request, f"run {failed_run.pk} has no failed object to retry", messages.WARNING)
            return redirect("admin:contracts_synchronizationrun_change", failed_run.pk)
        run = self._start(request, sync, scope=origin_ids)
        if run is None:
            return redirect("admin:contracts_synchronizationrun_change", failed_run.pk)
        return redirect("admin:contracts_synchronizationrun_change", run.pk)

    def test_view(self, request, pk: int):
        sync = get_object_or_404(Synchronization, pk=pk)
        if not self.has_run_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            # A test run calls the source: a link (or another site) must not start one.
            return TemplateResponse(request, "admin/syncapp/test_sync_confirm.html", {
                **self.admin_site.each_context(request), "title": f"Test sync {sync.reference}", "subject": sync,
                "back_url": reverse("admin:syncapp_synchronization_change", args=[pk]),
            })
        try:
            run = sync_service.run_test(synchronization=sync)
        except sync_service.ConfigurationError as error:
            self.message_user(request, str(error), messages.ERROR)
            return redirect("admin:syncapp_synchronization_change", pk)
        rows = []
        for entry in run.report:
            detail = entry.get("error") or entry.get("result") or entry.get("count") or ""
            rows.append({**entry, "detail": json.dumps(detail, indent=1, ensure_ascii=False, default=str)})
        return TemplateResponse(request, "admin/syncapp/test_sync.html", {
            **self.admin_site.each_context(request),
            "title": f"Test sync {sync.reference}", "subject": sync, "run": run, "rows": rows,
            "back_url": reverse("admin:syncapp_synchronization_change", args=[pk]),
        })

    def try_conditions_view(self, request, pk: int):
        sync = get_object_or_404(Synchronization, pk=pk)
        if not self.has_view_permission(request, sync):
            raise PermissionDenied  # as the API's try of conditions: only who may read the synchronization
        return _try_page(
            request, title=f"Try the conditions of {sync.reference}", subject=sync,
            back_url=reverse("admin:syncapp_synchronization_change", args=[pk]),
            explanation="The saved conditions are evaluated on the sample object.",
            run=lambda sample: conditions_try(conditions=sync.conditions, sample=sample),
        )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: the key is shown once, on the page after it is made; the list and each token show no key.

    Only a superuser makes or sees another user's tokens: a token is all its user's permissions.
    """

    list_display = ("user", "name", "created")
    list_filter = ("user",)
    fields = ("user", "name", "created")
    readonly_fields = ("created",)

    def get_readonly_fields(self, request, obj=None):
        return ("user", "name", "created") if obj is not None else ("created",)

    def get_queryset(self, request):
        tokens = super().get_queryset(request).select_related("user")
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
            kwargs["initial"] = request.user.pk
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        token, key = token_create(user=obj.user, name=obj.name)
        obj.pk, obj.digest, obj.created = token.pk, token.digest, token.created
        request.api_token_key = key  # shown by response_add, never stored

    def response_add(self, request, obj, post_url_continue=None):
        return TemplateResponse(request, "admin/syncapp/token_made.html", {
            **self.admin_site.each_context(request),
            "title": "A new API token", "subject": obj, "key": request.api_token_key,
            "back_url": reverse("admin:syncapp_apitoken_changelist"), "opts": self.model._meta,
        })
