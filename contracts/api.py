"""REST API of runs, contracts and contract logs (read-only)."""
from __future__ import annotations

from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp import permissions
from syncapp.runs.recover import run_cancel


class RunSerializer(serializers.ModelSerializer):
    counts = serializers.DictField(read_only=True)

    class Meta:
        model = SynchronizationRun
        fields = [
            "id", "reference", "synchronization", "parent", "trigger", "is_test", "is_forced", "mode", "status",
            "counts", "pages_fetched", "objects_queued", "objects_done", "enrichments", "enrichments_failed",
            "cursor_sent", "cursor_value", "cursor_missing", "error_message", "report",
            "created_at", "started_at", "finished_at",
        ]


class ContractSerializer(serializers.ModelSerializer):
    class Meta:
        model = SynchronizationContract
        exclude = ["last_processed_run"]


class ContractLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = ContractLog
        fields = "__all__"


# Query parameters every list takes besides its filters.
PAGING_PARAMETERS = frozenset({"limit", "offset", "format"})


class _FilteredBySynchronization:
    """Lists filtered by `synchronization` (its id or its reference) and the model's own status fields.

    A parameter the list does not know is refused naming the ones it knows: a misspelt filter that
    silently returned everything (or nothing) would mislead.
    """

    def filter_names(self) -> list[str]:
        fields = {field.name for field in self.get_serializer_class().Meta.model._meta.fields}
        return ["synchronization", *(name for name in ("status", "target_last_action", "action") if name in fields)]

    def get_queryset(self):
        queryset = super().get_queryset()
        names = self.filter_names()
        unknown = sorted(set(self.request.query_params) - set(names) - PAGING_PARAMETERS)
        if unknown:
            raise ValidationError({
                name: f"unknown filter; this list takes {', '.join(names)} (and limit, offset)" for name in unknown
            })
        named = self.request.query_params.get("synchronization")
        if named:
            by = {"synchronization_id": int(named)} if named.isdigit() else {"synchronization__reference": named}
            queryset = queryset.filter(**by)
        for field in names[1:]:
            value = self.request.query_params.get(field)
            if value:
                queryset = queryset.filter(**{field: value})
        return queryset


class RunViewSet(_FilteredBySynchronization, viewsets.ReadOnlyModelViewSet):
    queryset = SynchronizationRun.objects.all()
    serializer_class = RunSerializer
    action_permissions = {"cancel": [permissions.CANCEL]}

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None) -> Response:
        """Cancel an active run: its queued tasks do nothing and nothing is deleted."""
        run = self.get_object()
        if not run_cancel(run=run):
            detail = f"run {run.pk} has already ended ({run.status})"
            return Response({"detail": detail}, status=status.HTTP_409_CONFLICT)
        return Response(RunSerializer(run).data)


class ContractViewSet(_FilteredBySynchronization, viewsets.ReadOnlyModelViewSet):
    queryset = SynchronizationContract.objects.all()
    serializer_class = ContractSerializer


class ContractLogViewSet(_FilteredBySynchronization, viewsets.ReadOnlyModelViewSet):
    queryset = ContractLog.objects.all()
    serializer_class = ContractLogSerializer
