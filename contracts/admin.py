import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, Value
from django.db.models.functions import LPad
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from syncapp import permissions
from syncapp.audit import note_record
from syncapp.models import Object
from syncapp.progress import duration_text
from syncapp.runs.recover import run_cancel
from syncapp.summaries import (
    FAILING_STATUSES,
    run_failures,
    run_live,
    run_pages_screen,
    run_seconds,
)
from syncapp.targets import writer_kind
from syncapp.write_back import conflict_resolve
from workers import dispatch

# Origin ids are text, but most are numbers: padded on the left they sort 2 before 10, and text still sorts.
ORIGIN_ORDER = LPad("origin_id", 255, Value("0"))


@admin.display(description="Origin id", ordering=ORIGIN_ORDER)
def origin(record: SynchronizationContract | ContractLog) -> str:
    return record.origin_id


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the service keeps itself: shown, never added or edited by hand (deleting old ones is allowed)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _run_fields() -> list[str]:
    return [field.name for field in SynchronizationRun._meta.fields]


@admin.register(SynchronizationRun)
class SynchronizationRunAdmin(ReadOnlyAdmin):
    """A run's page is made for people: a summary first (live while the run is active), its pages a
    screen at a time, the raw fields in a collapsed section; the list fits a screen."""

    # What a person scans runs for, narrow enough for the list beside the filters: the kind of run (trigger,
    # mode, test) is a filter and on the run's page.
    list_display = ["id", "synchronization_shown", "status", "started", "duration", "counts_shown", "problem"]
    list_display_links = ["id", "status"]
    list_filter = ["status", "trigger", "mode", "is_test", "synchronization"]
    list_select_related = ["synchronization"]
    search_fields = ["synchronization__reference", "error_message"]
    date_hierarchy = "created_at"
    readonly_fields = _run_fields()
    fieldsets = [("All fields", {"classes": ["collapse"], "fields": _run_fields()})]
    change_form_template = "admin/contracts/synchronizationrun/run_page.html"
    actions = ["cancel"]

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm(permissions.CANCEL)

    def has_delete_permission(self, request, obj=None) -> bool:
        # An active run is not deleted: its tasks would go on writing for a run that is gone.
        if obj is not None and obj.status in SynchronizationRun.ACTIVE_STATUSES:
            return False
        return super().has_delete_permission(request, obj)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(run_duration=F("finished_at") - F("started_at"))

    @admin.display(description="Started", ordering="created_at")
    def started(self, run: SynchronizationRun) -> str:
        return timezone.localtime(run.started_at or run.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="Duration", ordering="run_duration")
    def duration(self, run: SynchronizationRun) -> str:
        return duration_text(run_seconds(run))

    @admin.display(description="Sync", ordering="synchronization__reference")
    def synchronization_shown(self, run: SynchronizationRun) -> str:
        test = " (test)" if run.is_test else ""
        return format_html('<span title="{}">{}</span>{}', run.synchronization.name, run.synchronization.reference,
                           test)

    @admin.display(description="Counts")
    def counts_shown(self, run: SynchronizationRun) -> str:
        return " · ".join(f"{name} {value:,}" for name, value in run.counts.items() if value) or "-"

    @admin.display(description="Error", ordering="error_message")
    def problem(self, run: SynchronizationRun) -> str:
        if run.error_message:
            text = run.error_message.splitlines()[0]
            return text if len(text) <= 80 else text[:79] + "…"
        not_written = run.failed + run.invalid
        return f"{not_written:,} object(s) not written" if not_written else ""

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            function, name, description = actions["delete_selected"]
            actions["delete_selected"] = (self._delete_ended_only(function), name, description)
        return actions

    def _delete_ended_only(self, delete_selected):
        def delete_ended(modeladmin, request, queryset):
            active = list(queryset.filter(status__in=SynchronizationRun.ACTIVE_STATUSES).values_list("pk", flat=True))
            if active:
                self.message_user(request, f"active runs are not deleted (cancel them first): {active}",
                                  messages.ERROR)
                return None
            return delete_selected(modeladmin, request, queryset)
        return delete_ended

    def get_deleted_objects(self, objs, request):
        """Name the runs to delete, and only count what goes with them: a run of 600 pages is not 600 lines."""
        _listed, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        return [str(run) for run in objs], model_count, perms_needed, protected

    def log_deletions(self, request, queryset):
        """Record the deletion also in the run's synchronization's history, which outlives the run."""
        entries = super().log_deletions(request, queryset)
        for run in queryset:
            pages = RunPage.objects.filter(run=run).count()
            counts = ", ".join(f"{name} {value}" for name, value in run.counts.items() if value) or "no objects"
            note_record(user=request.user, instance=run.synchronization, message=(
                f"Deleted run {run.pk} ({run.status}, {run.trigger}, created "
                f"{timezone.localtime(run.created_at):%Y-%m-%d %H:%M:%S}; {pages} pages; {counts})"
            ))
        return entries

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        if run is None or not self.has_view_permission(request, run):
            return super().change_view(request, object_id, form_url, extra_context)
        live = run_live(run)
        failures = run_failures(run=run)
        may_run = request.user.has_perm(permissions.RUN)
        sync = run.synchronization
        incremental = bool((sync.source_config or {}).get("incremental"))
        context = {
            "run": run, "live": live, "live_json": live, "counts": run.counts,
            "failures": failures, "failed_pages": run.pages.filter(status=RunPage.Status.FAILED).count(),
            "pages": run_pages_screen(run=run, number=request.GET.get("pages") or 1),
            "pages_open": "pages" in request.GET,
            "progress_url": reverse("admin:contracts_synchronizationrun_progress", args=[run.pk]),
            "logs_url": reverse("admin:contracts_contractlog_changelist") + f"?run__id__exact={run.pk}",
            "failing_logs_url": reverse("admin:contracts_contractlog_changelist")
            + f"?run__id__exact={run.pk}&status__in={','.join(FAILING_STATUSES)}",
            "synchronization_url": reverse("admin:syncapp_synchronization_change", args=[sync.pk]),
            "parent_url": reverse("admin:contracts_synchronizationrun_change", args=[run.parent_id])
            if run.parent_id else None,
            "cancel_url": reverse("admin:contracts_synchronizationrun_cancel", args=[run.pk])
            if live["active"] and self.has_cancel_permission(request) else None,
            "run_again_url": reverse(
                "admin:syncapp_synchronization_run_full" if run.mode == "full" and incremental
                else "admin:syncapp_synchronization_run", args=[sync.pk],
            ) if may_run and not run.is_test and not live["active"] else None,
            "retry_url": reverse("admin:syncapp_synchronization_retry_failed", args=[sync.pk, run.pk])
            if may_run and failures and not live["active"] and not run.is_test else None,
            "title": f"Run {run.pk} of {sync.reference}",
        }
        return super().change_view(request, object_id, form_url, {**context, **(extra_context or {})})

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/progress/", wrap(self.progress_view), name="contracts_synchronizationrun_progress"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name="contracts_synchronizationrun_cancel"),
            *super().get_urls(),
        ]

    def progress_view(self, request, pk: int) -> JsonResponse:
        run = get_object_or_404(SynchronizationRun, pk=pk)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return JsonResponse(run_live(run))

    def cancel_view(self, request, pk: int):
        run = get_object_or_404(SynchronizationRun, pk=pk)
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        back = "_from_synchronization" in request.POST or "from" in request.GET
        back_url = (reverse("admin:syncapp_synchronization_change", args=[run.synchronization_id]) if back
                    else reverse("admin:contracts_synchronizationrun_change", args=[run.pk]))
        if request.method != "POST":
            # Cancelling stops a run for good: a click asks first, and a link cannot do it.
            return TemplateResponse(request, "admin/contracts/synchronizationrun/cancel_confirm.html", {
                **self.admin_site.each_context(request), "title": f"Cancel run {run.pk}?", "subject": run,
                "run": run, "live": run_live(run), "back_url": back_url, "from_synchronization": back,
            })
        with dispatch.for_the_runner():  # the run waiting behind it: for the runner, not this request
            cancelled = run_cancel(run=run)
        if cancelled:
            self.message_user(request, f"run {run.pk} cancelled", messages.SUCCESS)
        else:
            self.message_user(request, f"run {run.pk} had already ended ({run.status})", messages.WARNING)
        return redirect(back_url)

    @admin.action(description="Cancel the selected runs", permissions=["cancel"])
    def cancel(self, request, queryset) -> None:
        cancelled = [run.pk for run in queryset if run_cancel(run=run)]
        self.message_user(request, f"cancelled {len(cancelled)} run(s)", messages.SUCCESS)


@admin.register(SynchronizationContract)
class SynchronizationContractAdmin(ReadOnlyAdmin):
    list_display = [origin, "synchronization", "status", "target_last_action", "target", "updated_at"]
    list_filter = ["synchronization", "status", "target_last_action", "updated_at"]
    search_fields = ["origin_id", "target_id", "last_error"]
    readonly_fields = ["reference", "target", "logs_link", "versions", "created_at", "updated_at"]
    actions = ["keep_source", "keep_register"]

    @admin.display(description="Target object", ordering="target_id")
    def target(self, contract: SynchronizationContract) -> str:
        if not contract.target_id:
            return "-"
        writer = writer_kind(contract.synchronization.target_type)
        if writer is not None and writer.writes_schema:  # an object of the register: link to it
            url = reverse("admin:syncapp_object_change", args=[contract.target_id])
            return format_html('<a href="{}">{}</a>', url, contract.target_id)
        return contract.target_id  # an id at another system

    @admin.display(description="Logs")
    def logs_link(self, contract: SynchronizationContract) -> str:
        url = reverse("admin:contracts_contractlog_changelist") + f"?contract__id__exact={contract.pk}"
        return format_html('<a href="{}">The logs of this object</a>', url)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("synchronization")

    @admin.display(description="Versions (a conflict: both sides changed)")
    def versions(self, contract: SynchronizationContract) -> str:
        if contract.status != SynchronizationContract.Status.CONFLICT:
            return "-"
        obj = Object.objects.filter(pk=contract.target_id).first() if contract.target_id else None
        incoming = contract.logs.filter(status=SynchronizationContract.Status.CONFLICT).order_by("-created_at").first()
        return format_html(
            "<p>In the register:</p><pre>{}</pre><p>From the source:</p><pre>{}</pre>",
            json.dumps(obj.data if obj else None, indent=1, ensure_ascii=False),
            json.dumps(incoming.target_object if incoming else None, indent=1, ensure_ascii=False),
        )

    def _resolve(self, request, queryset, *, keep: str) -> None:
        conflicts = queryset.filter(status=SynchronizationContract.Status.CONFLICT)
        for contract in conflicts:
            conflict_resolve(contract=contract, keep=keep)
        self.message_user(request, f"resolved {len(conflicts)} conflict(s)",
                          messages.SUCCESS)

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("contracts.change_synchronizationcontract")

    @admin.action(description="Resolve conflicts: keep the source's version", permissions=["resolve"])
    def keep_source(self, request, queryset) -> None:
        self._resolve(request, queryset, keep="source")

    @admin.action(description="Resolve conflicts: keep the register's version", permissions=["resolve"])
    def keep_register(self, request, queryset) -> None:
        self._resolve(request, queryset, keep="target")


@admin.register(ContractLog)
class ContractLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "synchronization", origin, "action", "status", "error"]
    list_filter = ["synchronization", "action", "status", "created_at"]
    search_fields = ["origin_id", "error", "source_object", "target_object"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in ContractLog._meta.fields]
