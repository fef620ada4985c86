import json

from django.contrib import admin, messages
from django.utils.html import format_html

from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from syncapp import permissions
from syncapp.models import Object
from syncapp.runs.recover import run_cancel
from syncapp.write_back import conflict_resolve


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
    readonly_fields = ["number", "status", "object_count", "error_message", "finished_at"]
    exclude = ["request"]


@admin.register(SynchronizationRun)
class SynchronizationRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "synchronization", "status", "trigger", "is_test", "found", "created", "updated",
        "unchanged", "invalid", "failed", "created_at",
    ]
    list_filter = ["status", "trigger", "is_test", "synchronization"]
    readonly_fields = [field.name for field in SynchronizationRun._meta.fields]
    inlines = [RunPageInline]
    actions = ["cancel"]

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm(permissions.CANCEL)

    @admin.action(description="Cancel the selected runs", permissions=["cancel"])
    def cancel(self, request, queryset) -> None:
        cancelled = [run.pk for run in queryset if run_cancel(run=run)]
        self.message_user(request, f"cancelled {len(cancelled)} run(s)", messages.SUCCESS)


@admin.register(SynchronizationContract)
class SynchronizationContractAdmin(ReadOnlyAdmin):
    list_display = ["origin_id", "synchronization", "status", "target_last_action", "target_id", "updated_at"]
    list_filter = ["synchronization", "status", "target_last_action"]
    search_fields = ["origin_id", "target_id"]
    readonly_fields = ["reference", "versions", "created_at", "updated_at"]
    actions = ["keep_source", "keep_register"]

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
    list_display = ["created_at", "synchronization", "origin_id", "action", "status", "error"]
    list_filter = ["synchronization", "action", "status"]
    search_fields = ["origin_id", "error"]
    readonly_fields = [field.name for field in ContractLog._meta.fields]
