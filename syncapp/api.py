"""REST API of sources, mappings, the register and synchronizations."""
from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from contracts.api import RunSerializer
from contracts.models import SynchronizationRun
from contracts.runs import RunRefused
from syncapp import permissions
from syncapp import runs as sync_service
from syncapp.api_naming import (
    BodySerializer,
    CamelCaseModelSerializer,
    IdOrReferenceRelatedField,
    JSONBooleanField,
    NotNullJSONField,
    record_named,
)
from syncapp.audit import AuditedViewSetMixin
from syncapp.authentication import credential_problems, location_origin
from syncapp.conditions import conditions_normalize
from syncapp.configuration import synchronization_actions_set
from syncapp.errors import InvalidObject
from syncapp.filters import (
    ObjectFilterSet,
    RuleFilterSet,
    SchemaFilterSet,
    SourceFilterSet,
    StoredFileFilterSet,
    SynchronizationFilterSet,
)
from syncapp.mapping import JINJA2, LANGUAGES
from syncapp.models import Mapping, Object, Register, Rule, Schema, Source, StoredFile, Synchronization
from syncapp.openapi import CONFLICT, VALIDATION_ERROR, declared_field_schema
from syncapp.parsers import BoundedJSONParser
from syncapp.rules import rule_problems
from syncapp.sources import problems_by_field as source_problems_by_field
from syncapp.sources import source_configuration_problems, source_record_problems
from syncapp.sources.file import upload_problems
from syncapp.targets.register import (
    check_json_schema,
    register_object_save,
    register_objects_delete,
    validate_register_object,
)
from syncapp.tryout import conditions_try, mapping_config_of, mapping_try
from syncapp.validation import (
    SYNCHRONIZATION_FIELDS,
    mapping_problems_by_field,
    problems_by_field,
    synchronization_document,
    synchronization_problems,
)
from workers import dispatch


def declared_json_field(name: str, *, by: str) -> NotNullJSONField:
    """Return a JSON field whose OpenAPI description is its kinds' declarations, key by key."""
    field_class = type(f"Declared{name[:1].upper()}{name[1:]}Field", (NotNullJSONField,), {})
    return extend_schema_field(declared_field_schema(name, by=by))(field_class)(required=False)


class SourceSerializer(CamelCaseModelSerializer):
    credentials = serializers.JSONField(write_only=True, required=False)
    confirm_credentials = serializers.BooleanField(
        write_only=True, required=False,
        help_text="true: send the stored credentials to the origin of the location from now on (after a move).",
    )
    configuration = declared_json_field("configuration", by="type")
    # A file source's upload (multipart); answered with its stored name, never a URL: uploads are not served.
    file = serializers.FileField(required=False, allow_null=True, use_url=False)

    class Meta:
        model = Source
        fields = [
            "id", "reference", "name", "description", "type", "location", "file", "configuration", "credentials",
            "confirm_credentials", "is_enabled", "rate_limit_limit", "rate_limit_remaining", "rate_limit_reset",
            "rate_limit_window", "created_at", "updated_at",
        ]
        read_only_fields = [
            "rate_limit_limit", "rate_limit_remaining", "rate_limit_reset", "rate_limit_window",
        ]

    def validate_credentials(self, value):
        # The problems name keys and types, never the values: a refused answer echoes no secret.
        problems = credential_problems(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate(self, attrs):
        kind = attrs.get("type", getattr(self.instance, "type", "api"))
        location = attrs.get("location", getattr(self.instance, "location", ""))
        upload = attrs.get("file", getattr(self.instance, "file", None))
        errors = source_problems_by_field(source_record_problems(
            kind=kind, location=location, has_upload=bool(upload), credentials=attrs.get("credentials") or None,
        ))
        problems = upload_problems(upload=attrs.get("file"), kind=kind)
        if problems:
            errors.setdefault("file", []).extend(problems)
        configuration = attrs.get("configuration", getattr(self.instance, "configuration", {}))
        problems = source_configuration_problems(kind=kind, configuration=configuration)
        if problems:
            errors.setdefault("configuration", []).extend(problems)
        if errors:
            raise serializers.ValidationError(errors)
        confirm = attrs.pop("confirm_credentials", False)
        if "credentials" in attrs or confirm:
            request = self.context.get("request")
            if request is None or not request.user.has_perm(permissions.CHANGE_CREDENTIALS):
                raise PermissionDenied("setting or confirming credentials needs the permission "
                                       f"{permissions.CHANGE_CREDENTIALS!r}")
            credentials = attrs.get("credentials", getattr(self.instance, "credentials", None))
            origin = location_origin(location) if credentials else ""
            if origin != getattr(self.instance, "credentials_origin", None):
                attrs["credentials_origin"] = origin  # the history names it only when the binding moves
        return attrs


class MappingSerializer(CamelCaseModelSerializer):
    class Meta:
        model = Mapping
        fields = [
            "id", "reference", "name", "description", "mapping", "unset", "cast", "pass_through", "language",
            "created_at", "updated_at",
        ]

    def validate(self, attrs):
        config = {
            "mapping": attrs.get("mapping", getattr(self.instance, "mapping", {})),
            "unset": attrs.get("unset", getattr(self.instance, "unset", [])),
            "cast": attrs.get("cast", getattr(self.instance, "cast", {})),
            "passThrough": attrs.get("pass_through", getattr(self.instance, "pass_through", False)),
            "language": attrs.get("language", getattr(self.instance, "language", JINJA2)),
        }
        reference = attrs.get("reference", getattr(self.instance, "reference", None))
        errors = mapping_problems_by_field(config=config, reference=reference)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class RegisterSerializer(CamelCaseModelSerializer):
    class Meta:
        model = Register
        fields = ["id", "reference", "name", "description", "created_at", "updated_at"]


class SchemaSerializer(CamelCaseModelSerializer):
    class Meta:
        model = Schema
        fields = ["id", "register", "reference", "name", "description", "schema", "created_at", "updated_at"]

    def validate_schema(self, value):
        problems = check_json_schema(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value


class ObjectSerializer(CamelCaseModelSerializer):
    files = serializers.SerializerMethodField(
        help_text="The references of the files that belong to the object (stored by rules: /api/files/).",
    )

    class Meta:
        model = Object
        fields = ["uuid", "schema", "data", "files", "created_at", "updated_at"]

    def get_files(self, obj: Object) -> list[str]:
        return [stored.reference for stored in obj.files.all()]

    def validate(self, attrs):
        schema = attrs.get("schema") or getattr(self.instance, "schema", None)
        try:
            validate_register_object(schema=schema, data=attrs.get("data", getattr(self.instance, "data", {})))
        except InvalidObject as error:
            raise serializers.ValidationError({"data": [str(error)]}) from None
        return attrs


class RuleSerializer(CamelCaseModelSerializer):
    configuration = declared_json_field("ruleConfiguration", by="type")

    class Meta:
        model = Rule
        fields = [
            "id", "reference", "name", "description", "type", "timing", "order", "conditions", "configuration",
            "created_at", "updated_at",
        ]

    def validate_conditions(self, value):
        return conditions_normalize(value)  # checked with the rest in validate

    def validate(self, attrs):
        current = {name: attrs.get(name, getattr(self.instance, name, None))
                   for name in ("type", "timing", "conditions", "configuration")}
        problems = rule_problems(
            rule_type=current["type"], timing=current["timing"] or Rule.Timing.BEFORE,
            conditions=current["conditions"] or {}, configuration=current["configuration"] or {},
        )
        errors: dict[str, list[str]] = {}
        for problem in problems:
            where, _, message = problem.partition(": ")
            field = where.split(".", 1)[0].split("[", 1)[0]
            errors.setdefault(field if field in current else "non_field_errors", []).append(
                f"{where}: {message}" if where != field else message
            )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ActionsField(serializers.ListField):
    """A synchronization's rules, in the order it runs them (then by their `order`): each by its id or its
    reference; answered by id."""

    child = IdOrReferenceRelatedField(queryset=Rule.objects.all())

    def get_attribute(self, instance: Synchronization) -> list[Rule]:
        return [link.rule for link in instance.action_links.select_related("rule").order_by("position", "pk")]


class StoredFileSerializer(CamelCaseModelSerializer):
    reference = serializers.CharField(read_only=True, help_text="How an object's data names this file.")
    content = serializers.SerializerMethodField(help_text="Where its content is read (GET).")

    class Meta:
        model = StoredFile
        fields = [
            "uuid", "reference", "object", "rule", "name", "content_type", "size", "sha256", "tags", "source_url",
            "etag", "last_modified", "content", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_content(self, stored: StoredFile) -> str:
        return f"/api/files/{stored.uuid}/content/"


class SynchronizationSerializer(CamelCaseModelSerializer):
    # A bundle names the source and the target by reference in one key each; the API has a field for each kind.
    unknown_field_hints = {
        "sourceId": "a bundle's name: the API takes `source` (a source's id) or `sourceSchema` (a schema's id)",
        "targetId": "a bundle's name: the API takes `targetSchema` (a schema's id) or `targetSource` (a source's id)",
    }

    source_config = declared_json_field("sourceConfig", by="sourceType")
    target_config = declared_json_field("targetConfig", by="targetType")
    follow_ups = IdOrReferenceRelatedField(
        many=True, required=False, queryset=Synchronization.objects.all(),
        help_text="The synchronizations run after this one, each by its id or its reference; answered by id.",
    )
    actions = ActionsField(required=False, help_text=ActionsField.__doc__.replace("\n", " "))

    class Meta:
        model = Synchronization
        fields = [
            "id", "reference", "name", "description", "source_type", "source", "source_schema",
            "source_config", "source_hash_mapping", "source_target_mapping", "conditions", "target_type",
            "target_schema", "target_source", "target_config", "target_source_mapping", "follow_ups", "actions",
            "schedule", "is_enabled", "incremental_cursor", "incremental_cursor_path", "incremental_cursor_at",
            "created_at", "updated_at",
        ]
        read_only_fields = ["incremental_cursor", "incremental_cursor_path", "incremental_cursor_at"]

    def validate_conditions(self, value):
        return conditions_normalize(value)  # checked with the rest in validate

    def validate(self, attrs):
        instance = self.instance
        follow_ups = attrs.get("follow_ups", list(instance.follow_ups.all()) if instance else [])
        read = ("source_type", "source", "source_config")
        read_changed = instance is None or any(key in attrs and attrs[key] != getattr(instance, key) for key in read)
        values = {name: attrs.get(name, getattr(instance, name, None)) for name in SYNCHRONIZATION_FIELDS.values()}
        for name in ("source", "source_schema", "target_schema", "target_source"):
            values[name] = attrs.get(name, getattr(instance, name, None))
        actions = attrs.get("actions", ActionsField().get_attribute(instance) if instance else [])
        document = synchronization_document(values, follow_ups=[sync.reference for sync in follow_ups],
                                            actions=[rule.reference for rule in actions])
        problems = synchronization_problems(
            document, previous_reference=getattr(instance, "reference", None), read_changed=read_changed,
        )
        if problems:
            raise serializers.ValidationError(problems_by_field(problems, document=document))
        return attrs

    def create(self, validated_data):
        actions = validated_data.pop("actions", None)
        synchronization = super().create(validated_data)
        if actions is not None:
            synchronization_actions_set(synchronization, [rule.reference for rule in actions])
        return synchronization

    def update(self, instance, validated_data):
        actions = validated_data.pop("actions", None)
        synchronization = super().update(instance, validated_data)
        if actions is not None:
            synchronization_actions_set(synchronization, [rule.reference for rule in actions])
        return synchronization


class SampleSerializer(BodySerializer):
    """A sample source object under `data` (the mapping try also takes it under its former name `input`)."""

    also_accepted = {"input": "data"}

    data = serializers.JSONField(help_text="A sample source object.")

    def to_internal_value(self, data):
        if isinstance(data, dict) and "data" not in data and "input" in data:
            data = {**data, "data": data["input"]}
        return super().to_internal_value(data)


class MappingDraftTrySerializer(SampleSerializer):
    mapping = serializers.JSONField(required=False, default=dict)
    unset = serializers.JSONField(required=False, default=list)
    cast = serializers.JSONField(required=False, default=dict)
    passThrough = serializers.BooleanField(required=False, default=False)  # noqa: N815 - the config name
    language = serializers.ChoiceField(choices=LANGUAGES, required=False, default=JINJA2)


class ConditionsTrySerializer(SampleSerializer):
    conditions = serializers.JSONField(required=False, default=dict, help_text="JSON Logic conditions.")


class MappingOutcomeSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Whether the mapping applied.")
    result = serializers.JSONField(required=False, help_text="The mapped object, when it applied.")
    errors = serializers.ListField(child=serializers.CharField(), required=False, help_text="What is wrong.")
    key = serializers.CharField(required=False, allow_null=True, help_text="The mapping key that failed.")


class ConditionsOutcomeSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Whether the conditions could be evaluated.")
    passes = serializers.BooleanField(required=False, help_text="Whether the object passes them.")
    result = serializers.JSONField(required=False, allow_null=True, help_text="What the conditions evaluated to.")
    errors = serializers.ListField(child=serializers.CharField(), required=False, help_text="What is wrong.")


def _outcome_response(outcome: dict) -> Response:
    return Response(outcome, status=status.HTTP_200_OK if outcome["ok"] else status.HTTP_400_BAD_REQUEST)


def _try_responses(outcome: type[serializers.Serializer]) -> dict:
    return {
        200: outcome,
        400: OpenApiResponse(
            VALIDATION_ERROR.response,
            description="The body is invalid, or the try failed: then the outcome with `ok` false and `errors`.",
        ),
    }


class RunStartSerializer(BodySerializer):
    """How to run: each option true or false (JSON booleans), all false by default."""

    test = JSONBooleanField(default=False, help_text="A test run: report what would be done, write nothing.")
    force = JSONBooleanField(default=False, help_text="Write every object, changed or not.")
    full = JSONBooleanField(
        default=False, help_text="Read every record, not only what changed since the cursor (sourceConfig.incremental)."
    )


class SourceViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = Source.objects.all()
    serializer_class = SourceSerializer
    filterset_class = SourceFilterSet


class MappingViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = Mapping.objects.all()
    serializer_class = MappingSerializer
    action_permissions = {"try_saved": ["syncapp.view_mapping"], "try_draft": ["syncapp.view_mapping"]}

    @extend_schema(operation_id="mappings_try_saved", request=SampleSerializer,
                   responses=_try_responses(MappingOutcomeSerializer))
    @action(detail=True, methods=["post"], url_path="try", serializer_class=SampleSerializer)
    def try_saved(self, request: Request, pk=None) -> Response:
        """Apply this mapping to a sample object (`data`); nothing is stored."""
        body = SampleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _outcome_response(
            mapping_try(config=mapping_config_of(self.get_object()), sample=body.validated_data["data"])
        )

    @extend_schema(operation_id="mappings_try_draft", request=MappingDraftTrySerializer,
                   responses=_try_responses(MappingOutcomeSerializer))
    @action(detail=False, methods=["post"], url_path="try", serializer_class=MappingDraftTrySerializer)
    def try_draft(self, request: Request) -> Response:
        """Apply an unsaved mapping to a sample object (`data`)."""
        body = MappingDraftTrySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        config = {key: body.validated_data[key] for key in ("mapping", "unset", "cast", "passThrough", "language")}
        return _outcome_response(mapping_try(config=config, sample=body.validated_data["data"]))


class ConditionsViewSet(viewsets.ViewSet):
    """Try JSON Logic conditions on a sample object."""

    serializer_class = ConditionsTrySerializer
    action_permissions = {"try_conditions": ["syncapp.view_synchronization"]}

    @extend_schema(request=ConditionsTrySerializer, responses=_try_responses(ConditionsOutcomeSerializer))
    @action(detail=False, methods=["post"], url_path="try")
    def try_conditions(self, request: Request) -> Response:
        """Evaluate unsaved conditions on a sample object (`data`)."""
        body = ConditionsTrySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _outcome_response(
            conditions_try(conditions=body.validated_data["conditions"], sample=body.validated_data["data"])
        )


class RuleViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    """Rules: what synchronizations do with each object they write (named in their `actions`)."""

    queryset = Rule.objects.all()
    serializer_class = RuleSerializer
    filterset_class = RuleFilterSet


class StoredFileViewSet(viewsets.ReadOnlyModelViewSet):
    """Files that belong to register objects (fetched or written by rules); `?object=` narrows to one object's."""

    queryset = StoredFile.objects.all()
    serializer_class = StoredFileSerializer
    filterset_class = StoredFileFilterSet
    action_permissions = {"content": ["syncapp.view_storedfile"]}

    @extend_schema(responses={200: OpenApiResponse(description="The file's content, as stored.")})
    @action(detail=True, methods=["get"])
    def content(self, request: Request, pk=None) -> FileResponse:
        """Return the file's content."""
        stored = self.get_object()
        return FileResponse(stored.file.open("rb"), as_attachment=True, filename=stored.name,
                            content_type=stored.content_type or "application/octet-stream")


class RegisterViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = Register.objects.all()
    serializer_class = RegisterSerializer


class SchemaViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    queryset = Schema.objects.select_related("register")
    serializer_class = SchemaSerializer
    filterset_class = SchemaFilterSet


class ObjectViewSet(viewsets.ModelViewSet):
    queryset = Object.objects.select_related("schema").prefetch_related("files")
    serializer_class = ObjectSerializer
    filterset_class = ObjectFilterSet

    # Objects are written by the register's writer only (syncapp.targets.register).
    def perform_create(self, serializer) -> None:
        serializer.instance = register_object_save(obj=Object(**serializer.validated_data))

    def perform_update(self, serializer) -> None:
        obj = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(obj, name, value)
        register_object_save(obj=obj)

    def perform_destroy(self, instance) -> None:
        register_objects_delete(objects=[instance])


class SynchronizationViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    """Synchronizations; in a path one is named by its numeric id or its reference."""

    queryset = Synchronization.objects.prefetch_related("follow_ups")
    serializer_class = SynchronizationSerializer
    filterset_class = SynchronizationFilterSet
    action_permissions = {"try_conditions": ["syncapp.view_synchronization"], "run": [permissions.RUN]}
    lookup_by_reference = True  # syncapp.openapi documents the path parameter so

    def get_object(self) -> Synchronization:
        named = str(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        sync = record_named(self.filter_queryset(self.get_queryset()), named)
        if sync is None:
            raise Http404(f"No synchronization with id or reference {named!r}.")
        self.check_object_permissions(self.request, sync)
        return sync

    @extend_schema(request=SampleSerializer, responses=_try_responses(ConditionsOutcomeSerializer))
    @action(detail=True, methods=["post"], url_path="try-conditions", serializer_class=SampleSerializer)
    def try_conditions(self, request: Request, pk=None) -> Response:
        """Evaluate this synchronization's conditions on a sample object (`data`)."""
        body = SampleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _outcome_response(
            conditions_try(conditions=self.get_object().conditions, sample=body.validated_data["data"])
        )

    @extend_schema(
        request=RunStartSerializer,
        responses={
            202: OpenApiResponse(RunSerializer, description="Started (or, for a test run, done): the run."),
            400: OpenApiResponse(
                VALIDATION_ERROR.response,
                description="The body is invalid (an option not a JSON boolean, a name it does not take), or the "
                            "configuration is.",
            ),
            409: CONFLICT,
        },
    )
    # JSON only: the options are JSON booleans, which a form cannot send.
    @action(detail=True, methods=["post"], serializer_class=RunStartSerializer, parser_classes=[BoundedJSONParser])
    def run(self, request: Request, pk=None) -> Response:
        """Start a run (or a test run) of this synchronization; a test run answers with its report."""
        sync = self.get_object()
        options = RunStartSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        try:
            if options.validated_data["test"]:
                run = sync_service.run_test(synchronization=sync, trigger=SynchronizationRun.Trigger.API,
                                            full=options.validated_data["full"])
            else:
                # Tasks in process: queued for the runner (`sync serve`), never run inside this request.
                with dispatch.for_the_runner():
                    run = sync_service.run_start(
                        synchronization=sync, trigger=SynchronizationRun.Trigger.API,
                        force=options.validated_data["force"], full=options.validated_data["full"],
                    )
        except RunRefused as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        except sync_service.ConfigurationError as error:
            return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        run.refresh_from_db()
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
