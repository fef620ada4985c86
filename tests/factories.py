"""Factories for the tests: one valid instance of each model, saved straight to the database.

Every argument is keyword-only and has a default that makes a configuration the service accepts; a test
names only what it is about. Models are saved with `objects.create`, past the admin's and the API's
validation, so a test of that validation posts its own form or body.
"""
from __future__ import annotations

import copy
from typing import Any

from contracts.models import ContractLog, SynchronizationContract, SynchronizationRun
from syncapp.authentication import location_origin
from syncapp.configuration import bundle_import
from syncapp.models import Mapping, Object, Register, Rule, Schema, Source, StoredFile, Synchronization

SECRET = "s3cr3t-token-value"
ANIMAL_SCHEMA = {
    "type": "object", "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "legs": {"type": "integer", "minimum": 0}},
}
ACTIVE = {"==": [{"var": "status"}, "active"]}

# What a source of each type reads, where it lives and the sourceConfig that reads it.
SOURCE_KINDS: dict[str, dict[str, Any]] = {
    "api": {"reference": "zoo-api", "name": "Zoo API", "location": "http://127.0.0.1:8900",
            "config": {"endpoint": "/animals", "resultsPosition": "results"},
            "configuration": {"headers": {"Accept": "application/json"}}},
    "database": {"reference": "warehouse", "name": "Warehouse", "location": "postgresql://reader@127.0.0.1:5432/warehouse",
                 "config": {"table": "animals", "keyColumn": "id"}, "configuration": {"timeout": 30}},
    "file": {"reference": "animals-file", "name": "Animals file", "location": "http://127.0.0.1:8900/animals.json",
             "config": {"format": "json"}, "configuration": {"headers": {"Accept": "application/json"}}},
}
# Every kind of synchronization (source type, target type) the service runs.
SYNCHRONIZATION_KINDS = [
    ("api", "register/schema"), ("database", "register/schema"), ("file", "register/schema"),
    ("register/schema", "api"), ("api", "api"),
]


def make_source(
    *, reference: str | None = None, name: str | None = None, type: str = "api", location: str | None = None,
    configuration: dict | None = None, credentials: dict | None = None, **fields: Any,
) -> Source:
    """Make a source of `type` (a bearer of SECRET unless `credentials` says otherwise)."""
    kind = SOURCE_KINDS[type]
    credentials = {"token": SECRET} if credentials is None else credentials
    location = location or kind["location"]
    return Source.objects.create(
        reference=reference or kind["reference"], name=name or kind["name"], type=type, location=location,
        configuration=kind["configuration"] if configuration is None else configuration, credentials=credentials,
        credentials_origin=location_origin(location) if credentials else "", **fields,
    )


def make_mapping(
    *, reference: str = "animal-in", name: str = "Animal in", mapping: dict | None = None, cast: dict | None = None,
    **fields: Any,
) -> Mapping:
    return Mapping.objects.create(
        reference=reference, name=name, mapping={"name": "title"} if mapping is None else mapping,
        cast={"legs": "int"} if cast is None else cast, **fields,
    )


def make_register(*, reference: str = "zoo", name: str = "Zoo", **fields: Any) -> Register:
    return Register.objects.create(reference=reference, name=name, **fields)


def make_schema(
    *, register: Register | None = None, reference: str = "animal", name: str = "Animal", schema: dict | None = None,
    **fields: Any,
) -> Schema:
    """Make a schema of animals, in `register` or in the zoo register (made when there is none yet)."""
    register = register or Register.objects.filter(reference="zoo").first() or make_register()
    return Schema.objects.create(register=register, reference=reference, name=name,
                                 schema=copy.deepcopy(ANIMAL_SCHEMA) if schema is None else schema, **fields)


def make_object(*, schema: Schema | None = None, data: dict | None = None, **fields: Any) -> Object:
    return Object.objects.create(schema=schema or make_schema(), data={"name": "Nala"} if data is None else data,
                                 **fields)


def make_synchronization(
    *, reference: str = "animals", name: str = "Animals", source_type: str = "api",
    target_type: str = "register/schema", source: Source | None = None, source_schema: Schema | None = None,
    source_config: dict | None = None, source_target_mapping: Mapping | None = None, conditions: dict | None = None,
    target_schema: Schema | None = None, target_source: Source | None = None, target_config: dict | None = None,
    **fields: Any,
) -> Synchronization:
    """Make a synchronization of one kind with what that kind needs: by default the zoo API's active animals
    into the zoo register; a register source reads the zoo's animals, an API target writes to a CRM's /items.
    The animal-in mapping and the CRM are shared by the synchronizations that do not name their own."""
    if source_type == "register/schema":
        source_schema = source_schema or make_schema()
        source_config = {} if source_config is None else source_config
    else:
        source = source or make_source(type=source_type)
        source_config = copy.deepcopy(SOURCE_KINDS[source_type]["config"]) if source_config is None else source_config
    if target_type == "api":
        target_source = (target_source or Source.objects.filter(reference="crm").first()
                         or make_source(reference="crm", name="CRM", location="http://127.0.0.1:8901"))
        target_config = {"endpoint": "/items"} if target_config is None else target_config
    else:
        target_schema = target_schema or make_schema(reference="animal" if source_schema is None else "copy")
    shared_mapping = Mapping.objects.filter(reference="animal-in").first() or make_mapping()
    return Synchronization.objects.create(
        reference=reference, name=name, source_type=source_type, source=source, source_schema=source_schema,
        source_config=source_config, source_target_mapping=source_target_mapping or shared_mapping,
        conditions=copy.deepcopy(ACTIVE) if conditions is None else conditions, target_type=target_type,
        target_schema=target_schema, target_source=target_source,
        target_config={} if target_config is None else target_config, **fields,
    )


def make_rule(
    *, reference: str = "refuse-retired", name: str = "Refuse retired", type: str = "error", timing: str = "before",
    conditions: dict | None = None, configuration: dict | None = None, **fields: Any,
) -> Rule:
    """Make a rule (by default one that fails retired animals)."""
    return Rule.objects.create(
        reference=reference, name=name, type=type, timing=timing,
        conditions={"==": [{"var": "status"}, "retired"]} if conditions is None else conditions,
        configuration={"code": 422, "message": "retired"} if configuration is None else configuration, **fields,
    )


def make_stored_file(*, obj: Object | None = None, name: str = "report.pdf", **fields: Any) -> StoredFile:
    """Make the record of a file that belongs to a register object (its content is not written: a test of
    content stores it itself, in a media root of its own)."""
    return StoredFile.objects.create(object=obj or make_object(), name=name, content_type="application/pdf",
                                     size=8, sha256="0" * 64, file=f"objects/test/{name}", **fields)


def make_run(*, synchronization: Synchronization | None = None, **fields: Any) -> SynchronizationRun:
    values = {"status": SynchronizationRun.Status.SUCCEEDED, "found": 3, "created": 2, "filtered": 1}
    return SynchronizationRun.objects.create(synchronization=synchronization or make_synchronization(),
                                             **{**values, **fields})


def make_contract(*, synchronization: Synchronization | None = None, **fields: Any) -> SynchronizationContract:
    values = {"origin_id": "17", "origin_hash": "abc", "target_id": "t-17", "status": "synced"}
    return SynchronizationContract.objects.create(synchronization=synchronization or make_synchronization(),
                                                  **{**values, **fields})


def make_contract_log(*, contract: SynchronizationContract | None = None, **fields: Any) -> ContractLog:
    contract = contract or make_contract()
    values = {
        "synchronization": contract.synchronization, "contract": contract, "origin_id": contract.origin_id,
        "action": "create", "status": "synced", "source_object": {"id": 17}, "target_object": {"name": "Nala"},
    }
    return ContractLog.objects.create(**{**values, **fields})


def import_api_synchronization(
    *, location: str, source_config: dict, conditions: dict | None = None,
) -> Synchronization:
    """Import (validated as any bundle) the zoo API at `location` and a synchronization reading it with
    `source_config` into a zoo/animal schema that takes any object."""
    bundle_import({
        "sources": [{"reference": "zoo-api", "name": "Zoo", "type": "api", "location": location}],
        "registers": [{"reference": "zoo", "name": "Zoo",
                       "schemas": [{"reference": "animal", "name": "Animal", "schema": {"type": "object"}}]}],
        "synchronizations": [{
            "reference": "animals", "name": "Animals", "sourceType": "api", "sourceId": "zoo-api",
            "sourceConfig": source_config, "conditions": conditions or {},
            "targetType": "register/schema", "targetId": "zoo/animal",
        }],
    })
    return Synchronization.objects.get(reference="animals")


# The factory of each model the admin shows, by its label.
FACTORIES = {
    "syncapp.source": make_source,
    "syncapp.mapping": make_mapping,
    "syncapp.register": make_register,
    "syncapp.schema": make_schema,
    "syncapp.object": make_object,
    "syncapp.synchronization": make_synchronization,
    "syncapp.rule": make_rule,
    "syncapp.storedfile": make_stored_file,
    "contracts.synchronizationrun": make_run,
    "contracts.synchronizationcontract": make_contract,
    "contracts.contractlog": make_contract_log,
}
