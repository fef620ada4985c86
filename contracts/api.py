"""REST API of runs, their pages, contracts and contract logs (read-only, but for cancelling a run)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from contracts.filters import ContractFilterSet, ContractLogFilterSet, RunFilterSet
from contracts.models import ContractLog, RunPage, SynchronizationContract, SynchronizationRun
from syncapp import permissions
from syncapp.api_naming import BodySerializer, CamelCaseModelSerializer
from syncapp.openapi import CONFLICT, VALIDATION_ERROR
from syncapp.runs.recover import run_cancel
from workers import dispatch


class RunCountsSerializer(serializers.Serializer):
    found = serializers.IntegerField()
    filtered = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    deleted = serializers.IntegerField()
    invalid = serializers.IntegerField()
    failed = serializers.IntegerField()


class RunSerializer(CamelCaseModelSerializer):
    synchronization_reference = serializers.CharField(source="synchronization.reference", read_only=True)
    counts = RunCountsSerializer(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = SynchronizationRun
        fields = [
            "id", "reference", "synchronization", "synchronization_reference", "parent", "trigger", "is_test",
            "is_forced", "mode", "status", "counts", "pages_fetched", "objects_queued", "objects_done",
            "enrichments", "enrichments_failed", "cursor_sent", "cursor_value", "cursor_missing", "retries",
            "waited_seconds", "deferred_until", "error_message", "report", "created_at", "started_at", "finished_at",
            "duration_seconds",
        ]


class NoBodySerializer(BodySerializer):
    """The body of an action that takes none: any name sent in it is refused, not ignored."""


class RunPageSerializer(CamelCaseModelSerializer):
    class Meta:
        model = RunPage
        fields = ["id", "run", "number", "status", "object_count", "request", "error_message", "not_before",
                  "created_at", "finished_at"]


class ContractSerializer(CamelCaseModelSerializer):
    class Meta:
        model = SynchronizationContract
        exclude = ["last_processed_run"]


class ContractLogSerializer(CamelCaseModelSerializer):
    class Meta:
        model = ContractLog
        fields = "__all__"


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = SynchronizationRun.objects.select_related("synchronization")
    serializer_class = RunSerializer
    filterset_class = RunFilterSet
    action_permissions = {"cancel": [permissions.CANCEL], "pages": ["contracts.view_synchronizationrun"]}

    @extend_schema(request=None, responses={
        200: RunSerializer,
        400: OpenApiResponse(VALIDATION_ERROR.response, description="A body was sent with names: this takes none."),
        409: CONFLICT,
    })
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None) -> Response:
        """Cancel an active run: its queued tasks do nothing and nothing is deleted. It takes no body."""
        run = self.get_object()
        NoBodySerializer(data=request.data).is_valid(raise_exception=True)
        with dispatch.for_the_runner():  # the run waiting behind it: for the runner, not this request
            cancelled = run_cancel(run=run)
        if not cancelled:
            detail = f"run {run.pk} has already ended ({run.status})"
            return Response({"detail": detail}, status=status.HTTP_409_CONFLICT)
        return Response(RunSerializer(run).data)

    @extend_schema(
        filters=False,
        responses={200: OpenApiResponse(RunPageSerializer(many=True), description="The run's pages, in order.")},
    )
    @action(detail=True, methods=["get"], serializer_class=RunPageSerializer, pagination_class=None)
    def pages(self, request, pk=None) -> Response:
        """List the pages of this run: what was asked of the source, how many objects each held."""
        run = self.get_object()
        return Response(RunPageSerializer(run.pages.order_by("number"), many=True).data)


class ContractViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = SynchronizationContract.objects.all()
    serializer_class = ContractSerializer
    filterset_class = ContractFilterSet


class ContractLogViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ContractLog.objects.all()
    serializer_class = ContractLogSerializer
    filterset_class = ContractLogFilterSet
