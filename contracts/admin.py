import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Value
from django.db.models.functions import LPad
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html

from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from contracts.runs import run_progress
from syncapp import permissions
from syncapp.models import Object
from syncapp.runs.recover import run_cancel
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


class RunPageInline(admin.TabularInline):
    model = RunPage
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
    readonly_fields = ["number", "status", "object_count", "error_message", "not_before", "finished_at"]
    exclude = ["request"]


@admin.register(SynchronizationRun)
class SynchronizationRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "synchronization", "status", "trigger", "mode", "is_test", "found", "created", "updated",
        "unchanged", "invalid", "failed", "enrichments", "created_at",
    ]
    list_filter = ["status", "trigger", "mode", "is_test", "synchronization", "created_at"]
    search_fields = ["synchronization__reference", "error_message"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in SynchronizationRun._meta.fields]
    inlines = [RunPageInline]
    actions = ["cancel"]

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm(permissions.CANCEL)

    def get_readonly_fields(self, request, obj=None):
        return ["progress", *self.readonly_fields]

    @admin.display(description="Progress")
    def progress(self, run: SynchronizationRun) -> str:
        facts = run_progress(run)
        active = run.status in SynchronizationRun.ACTIVE_STATUSES
        cancel = format_html(
            ' <button type="submit" class="button" formaction="{}" formmethod="post" name="_cancel">Cancel run'
            "</button>", reverse("admin:contracts_synchronizationrun_cancel", args=[run.pk]),
        ) if active else ""
        logs = reverse("admin:contracts_contractlog_changelist") + f"?run__id__exact={run.pk}"
        parent = format_html(
            ' · follow-up of <a href="{}">run {}</a>',
            reverse("admin:contracts_synchronizationrun_change", args=[run.parent_id]), run.parent_id,
        ) if run.parent_id else ""
        # While the run is active the page asks for its progress every two seconds (a small JSON endpoint),
        # and shows itself again when the run's status changes (started, ended), so every field is current.
        script = format_html(
            "<script>(function poll() {{ fetch('{}').then(r => r.json()).then(p => {{"
            " const bar = document.getElementById('run-progress'); bar.max = Math.max(p.found, 1);"
            " bar.value = p.done; document.getElementById('run-progress-text').textContent = p.text;"
            " if (p.status !== '{}') location.reload(); else if (p.active) setTimeout(poll, 2000); }}); }})();"
            "</script>",
            reverse("admin:contracts_synchronizationrun_progress", args=[run.pk]), run.status,
        ) if active else ""
        return format_html(
            '<progress id="run-progress" value="{}" max="{}" style="width:20em"></progress> '
            '<span id="run-progress-text">{}</span>{}<br><a href="{}">Contract logs of this run</a>{}{}',
            facts["done"], max(facts["found"], 1), facts["text"], cancel, logs, parent, script,
        )

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
        return JsonResponse(run_progress(run))

    def cancel_view(self, request, pk: int):
        run = get_object_or_404(SynchronizationRun, pk=pk)
        if request.method != "POST" or not self.has_cancel_permission(request):
            raise PermissionDenied
        with dispatch.for_the_runner():  # the run waiting behind it: for the runner, not this request
            cancelled = run_cancel(run=run)
        if cancelled:
            self.message_user(request, f"run {run.pk} cancelled", messages.SUCCESS)
        else:
            self.message_user(request, f"run {run.pk} had already ended ({run.status})", messages.WARNING)
        if "_from_synchronization" in request.POST:
            return redirect("admin:syncapp_synchronization_change", run.synchronization_id)
        return redirect("admin:contracts_synchronizationrun_change", run.pk)

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
