from django.contrib import admin, messages

from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from syncapp import permissions
from syncapp.runs.recover import run_cancel


class RunPageInline(admin.TabularInline):
    model = RunPage
    extra = 0
    can_delete = False
    readonly_fields = ["number", "status", "object_count", "error_message", "finished_at"]
    exclude = ["request"]


@admin.register(SynchronizationRun)
class SynchronizationRunAdmin(admin.ModelAdmin):
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
class SynchronizationContractAdmin(admin.ModelAdmin):
    list_display = ["origin_id", "synchronization", "status", "target_last_action", "target_id", "updated_at"]
    list_filter = ["synchronization", "status", "target_last_action"]
    search_fields = ["origin_id", "target_id"]
    readonly_fields = ["reference", "created_at", "updated_at"]


@admin.register(ContractLog)
class ContractLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "synchronization", "origin_id", "action", "status", "error"]
    list_filter = ["synchronization", "action", "status"]
    search_fields = ["origin_id", "error"]
    readonly_fields = [field.name for field in ContractLog._meta.fields]
