"""Configuration bundles (SYNC.md section 2): import validates everything first, upserts by reference,
reports every problem with its path in the file, and export writes the same format back."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from syncapp.configuration import (
    CREDENTIALS_KEPT,
    ConfigurationInvalid,
    bundle_export,
    bundle_import,
    bundle_load,
    bundle_validate,
)
from syncapp.models import Mapping, Register, Schema, Source, Synchronization
from tests.conftest import zoo_bundle

pytestmark = pytest.mark.django_db

LOCATION = "http://127.0.0.1:8900"
SECRET = "s3cret-token-that-must-never-leave"
MODELS = (Source, Register, Schema, Mapping, Synchronization)


@pytest.fixture
def bundle() -> dict:
    """The zoo bundle of examples/zoo.json: one of each section."""
    return zoo_bundle(location=LOCATION)


@pytest.fixture
def rich_bundle(bundle) -> dict:
    """The zoo bundle plus what it leaves out: credentials, a hash mapping, follow-ups (to a
    synchronization defined further down), a schedule, a disabled synchronization and a push from the
    register back to the api."""
    bundle["sources"][0]["credentials"] = {"type": "bearer", "token": SECRET}
    bundle["sources"][0]["description"] = "The loopback zoo"
    bundle["mappings"].append({
        "reference": "animal-hash", "name": "What counts as a change", "mapping": {"name": "name", "legs": "legs"},
        "cast": {}, "unset": [], "passThrough": False,
    })
    bundle["mappings"].append({
        "reference": "animal-out", "mapping": {"title": "name"}, "cast": {"legs": ["int", "string"]},
        "unset": ["keeper"], "passThrough": True,
    })
    animals = bundle["synchronizations"][0]
    animals.update(
        sourceHashMapping="animal-hash", followUps=["push-animals", "retired-animals"], schedule="*/15 * * * *",
        description="Every 15 minutes",
    )
    bundle["synchronizations"].append({
        "reference": "retired-animals", "name": "Retired animals", "sourceType": "api", "sourceId": "zoo-api",
        "sourceConfig": {"endpoint": "/api/zoo/animals", "resultsPosition": "data.items",
                         "pagination": {"type": "page", "pageParam": "page", "maxPages": 10}},
        "sourceTargetMapping": "animal-in", "conditions": {"==": [{"var": "status"}, "retired"]},
        "targetType": "register/schema", "targetId": "zoo/animal", "isEnabled": False,
    })
    bundle["synchronizations"].append({
        "reference": "push-animals", "name": "Animals back to the zoo API",
        "sourceType": "register/schema", "sourceId": "zoo/animal",
        "targetType": "api", "targetId": "zoo-api", "targetConfig": {"endpoint": "/animals", "idPosition": "id"},
        "targetSourceMapping": "animal-out",
    })
    return bundle


def snapshot() -> dict:
    """Every configured row with its primary key, to compare the database before and after."""
    return {
        model.__name__: sorted(
            (json.dumps(row, sort_keys=True, default=str) for row in model.objects.values()), key=str
        )
        for model in MODELS
    }


def empty_the_database() -> None:
    Synchronization.objects.all().delete()
    Mapping.objects.all().delete()
    Schema.objects.all().delete()
    Register.objects.all().delete()
    Source.objects.all().delete()


def problems_of(bundle: dict) -> list[str]:
    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import(bundle)
    return caught.value.problems


# -- import -----------------------------------------------------------------------------------------------


def test_importing_the_zoo_bundle_creates_every_part_of_it(bundle):
    result = bundle_import(bundle)

    assert result.created == {"sources": 1, "registers": 1, "mappings": 1, "rules": 0, "synchronizations": 1}
    assert result.updated == {"sources": 0, "registers": 0, "mappings": 0, "rules": 0, "synchronizations": 0}
    source = Source.objects.get(reference="zoo-api")
    assert (source.name, source.type, source.location) == ("Zoo API (bundled sample source)", "api", LOCATION)
    assert source.configuration == {"headers": {"Accept": "application/json"}}
    schema = Schema.objects.get(register__reference="zoo", reference="animal")
    assert schema.register.name == "Zoo"
    assert schema.schema == bundle["registers"][0]["schemas"][0]["schema"]
    mapping = Mapping.objects.get(reference="animal-in")
    assert mapping.mapping == bundle["mappings"][0]["mapping"]
    assert (mapping.cast, mapping.unset, mapping.pass_through) == ({"legs": "int"}, [], False)
    sync = Synchronization.objects.get(reference="animals")
    assert sync.name == "Active animals into the zoo register"
    assert (sync.source_type, sync.source, sync.source_schema) == ("api", source, None)
    assert sync.source_config == bundle["synchronizations"][0]["sourceConfig"]
    assert sync.source_target_mapping == mapping
    assert sync.conditions == {"==": [{"var": "status"}, "active"]}
    assert (sync.target_type, sync.target_schema, sync.target_source) == ("register/schema", schema, None)
    assert sync.is_enabled is True


def test_importing_links_follow_ups_and_every_kind_of_reference(rich_bundle):
    bundle_import(rich_bundle)

    animals = Synchronization.objects.get(reference="animals")
    assert {s.reference for s in animals.follow_ups.all()} == {"push-animals", "retired-animals"}
    assert animals.source_hash_mapping.reference == "animal-hash"
    assert animals.schedule == "*/15 * * * *"
    assert Synchronization.objects.get(reference="retired-animals").is_enabled is False
    push = Synchronization.objects.get(reference="push-animals")
    assert push.source_schema.path == "zoo/animal"
    assert push.source is None
    assert push.target_source.reference == "zoo-api"
    assert push.target_schema is None
    assert push.target_source_mapping.reference == "animal-out"
    assert Source.objects.get(reference="zoo-api").credentials == {"type": "bearer", "token": SECRET}


def test_importing_the_same_bundle_twice_changes_nothing(rich_bundle):
    # Given a bundle that was imported once
    bundle_import(copy.deepcopy(rich_bundle))
    before = snapshot()
    exported = bundle_export()

    # When it is imported again
    result = bundle_import(copy.deepcopy(rich_bundle))

    # Then everything was found by reference and updated in place: no duplicates, the same ids
    assert result.created == {"sources": 0, "registers": 0, "mappings": 0, "rules": 0, "synchronizations": 0}
    assert result.updated == {"sources": 1, "registers": 1, "mappings": 3, "rules": 0, "synchronizations": 3}
    after = snapshot()
    for name in before:
        assert len(after[name]) == len(before[name]), name
    ids = {model.__name__: sorted(model.objects.values_list("pk", flat=True)) for model in MODELS}
    assert ids == {name: sorted(json.loads(row)["id"] for row in rows) for name, rows in before.items()}
    assert bundle_export() == exported
    assert Synchronization.follow_ups.through.objects.count() == 2


def test_importing_a_changed_bundle_updates_the_objects_with_the_same_reference(bundle):
    bundle_import(copy.deepcopy(bundle))
    ids = (Source.objects.get().pk, Mapping.objects.get().pk, Synchronization.objects.get().pk, Schema.objects.get().pk)
    bundle["sources"][0]["location"] = "http://127.0.0.1:8901"
    bundle["mappings"][0]["cast"] = {"legs": "float"}
    bundle["registers"][0]["schemas"][0]["schema"]["required"] = ["name"]
    bundle["synchronizations"][0]["conditions"] = {"!=": [{"var": "status"}, "retired"]}

    bundle_import(bundle)

    assert (Source.objects.get().pk, Mapping.objects.get().pk, Synchronization.objects.get().pk,
            Schema.objects.get().pk) == ids
    assert Source.objects.get().location == "http://127.0.0.1:8901"
    assert Mapping.objects.get().cast == {"legs": "float"}
    assert Schema.objects.get().schema["required"] == ["name"]
    assert Synchronization.objects.get().conditions == {"!=": [{"var": "status"}, "retired"]}


def test_a_bundle_may_refer_to_what_an_earlier_import_created(bundle):
    # Given the zoo imported
    bundle_import(copy.deepcopy(bundle))

    # When a bundle holding only a synchronization refers to its source, mapping and schema
    another = {**bundle["synchronizations"][0], "reference": "animals-2", "followUps": ["animals"]}
    second = {"synchronizations": [another]}
    result = bundle_import(second)

    # Then it is accepted and linked to them
    assert result.created["synchronizations"] == 1
    sync = Synchronization.objects.get(reference="animals-2")
    assert sync.source.reference == "zoo-api"
    assert sync.target_schema.path == "zoo/animal"
    assert [s.reference for s in sync.follow_ups.all()] == ["animals"]


def test_empty_conditions_as_openconnector_writes_them_import_as_no_conditions(bundle):
    bundle["synchronizations"][0]["conditions"] = []

    bundle_import(bundle)

    assert Synchronization.objects.get().conditions == {}


def _set(path: str, value) -> Callable[[dict], None]:
    """Return a change of the bundle that sets the value at a path like `sources.0.location`."""
    def change(bundle: dict) -> None:
        *parents, last = path.split(".")
        node = bundle
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def _delete(path: str) -> Callable[[dict], None]:
    def change(bundle: dict) -> None:
        *parents, last = path.split(".")
        node = bundle
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
    return change


def _append(section: str, item: dict) -> Callable[[dict], None]:
    def change(bundle: dict) -> None:
        bundle[section].append(item)
    return change


PROBLEMS = {
    "unknown section": (
        _set("connectors", []), "connectors: unknown section"),
    "section that is not a list": (
        _set("mappings", {"animal-in": {}}), "mappings: must be a list"),
    "reference that is not a slug": (
        _set("sources.0.reference", "zoo api!"), "sources[0].reference: must be a slug"),
    "missing reference": (
        _delete("mappings.0.reference"), "mappings[0].reference: must be a slug"),
    "reference used twice in a section": (
        _append("sources", {"reference": "zoo-api", "location": "http://127.0.0.1:1"}),
        "sources[1].reference: 'zoo-api' appears twice in sources"),
    "schema reference used twice in a register": (
        lambda b: b["registers"][0]["schemas"].append({"reference": "animal", "schema": {}}),
        "registers[0].schemas[1].reference: 'animal' appears twice"),
    "source without location": (
        _delete("sources.0.location"), "sources[0].location: an api source needs an http:// or https:// URL"),
    "api source with a non-http location": (
        _set("sources.0.location", "ftp://127.0.0.1/animals"),
        "sources[0].location: an api source needs an http:// or https:// URL"),
    "unknown source type": (
        _set("sources.0.type", "carrier-pigeon"), "sources[0].type: must be one of api, database, file"),
    "source configuration that is not an object": (
        _set("sources.0.configuration", ["Accept"]), "sources[0].configuration: must be an object"),
    "invalid JSON Schema": (
        _set("registers.0.schemas.0.schema.properties.legs.type", "whole number"),
        "registers[0].schemas[0].schema: properties/legs/type:"),
    "JSON Schema that is not an object": (
        _set("registers.0.schemas.0.schema", "animal"),
        "registers[0].schemas[0].schema: a JSON Schema must be an object"),
    "unknown cast": (
        _set("mappings.0.cast", {"legs": "integerish"}), 'mappings[0].cast.legs: unknown cast "integerish"'),
    "template syntax error in a mapping": (
        _set("mappings.0.mapping.label", "{{ name the {{ species }}"), "mappings[0].mapping.label: template syntax"),
    "passThrough that is not a boolean": (
        _set("mappings.0.passThrough", "yes"), "mappings[0].passThrough: must be a boolean"),
    "unknown JSON Logic operator": (
        _set("synchronizations.0.conditions", {"=~": [{"var": "name"}, "^A"]}),
        'synchronizations[0].conditions: unknown operator "=~"'),
    "unknown JSON Logic operator deep in the rule": (
        _set("synchronizations.0.conditions", {"and": [{"==": [1, 1]}, {"!": {"matches": [{"var": "name"}]}}]}),
        'synchronizations[0].conditions.and[1].!: unknown operator "matches"'),
    "JSON Logic operator that reaches Python": (
        _set("synchronizations.0.conditions", {"method": [{"var": "name"}, "upper"]}),
        'synchronizations[0].conditions: operator "method" is not allowed'),
    "unknown sourceId": (
        _set("synchronizations.0.sourceId", "zoo-apl"),
        "synchronizations[0].sourceId: no source with reference 'zoo-apl'"),
    "unknown register/schema sourceId": (
        lambda b: b["synchronizations"][0].update(sourceType="register/schema", sourceId="zoo/animals"),
        "synchronizations[0].sourceId: no register/schema 'zoo/animals'"),
    "unknown targetId": (
        _set("synchronizations.0.targetId", "zoo/giraffe"),
        "synchronizations[0].targetId: no register/schema 'zoo/giraffe'"),
    "unknown api targetId": (
        lambda b: b["synchronizations"][0].update(targetType="api", targetId="elsewhere"),
        "synchronizations[0].targetId: no source with reference 'elsewhere'"),
    "unknown target type": (
        _set("synchronizations.0.targetType", "spreadsheet"), "synchronizations[0].targetType: must be one of"),
    "unknown sourceTargetMapping": (
        _set("synchronizations.0.sourceTargetMapping", "animal-out"),
        "synchronizations[0].sourceTargetMapping: no mapping with reference 'animal-out'"),
    "unknown sourceHashMapping": (
        _set("synchronizations.0.sourceHashMapping", "animal-hash"),
        "synchronizations[0].sourceHashMapping: no mapping with reference 'animal-hash'"),
    "unknown followUps reference": (
        _set("synchronizations.0.followUps", ["animals", "keepers"]),
        "synchronizations[0].followUps[1]: no synchronization with reference 'keepers'"),
    "followUps that are not a list": (
        _set("synchronizations.0.followUps", "animals"), "synchronizations[0].followUps: must be a list"),
    "bad pagination type": (
        _set("synchronizations.0.sourceConfig.pagination", {"type": "scroll"}),
        "synchronizations[0].sourceConfig.pagination.type: must be one of"),
    "sourceConfig that is not an object": (
        _set("synchronizations.0.sourceConfig", "/animals"), "synchronizations[0].sourceConfig: must be an object"),
}


@pytest.mark.parametrize("change, expected", list(PROBLEMS.values()), ids=list(PROBLEMS))
def test_a_problem_is_reported_with_its_path_in_the_file(bundle, change, expected):
    change(bundle)

    problems = problems_of(bundle)

    assert any(problem.startswith(expected) for problem in problems), problems
    assert not Source.objects.exists()


def test_a_bundle_that_is_not_an_object_is_refused():
    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import([{"reference": "zoo-api"}])

    assert caught.value.problems == ["(root): a configuration bundle must be an object"]


def test_every_problem_of_a_bundle_is_reported_at_once(bundle):
    bundle["sources"][0]["location"] = "zoo.example"
    bundle["mappings"][0]["cast"]["weightKg"] = "kilograms"
    bundle["synchronizations"][0]["conditions"] = {"=~": [{"var": "name"}, "^A"]}
    bundle["synchronizations"][0]["followUps"] = ["keepers"]

    problems = problems_of(bundle)

    assert problems == [
        "sources[0].location: an api source needs an http:// or https:// URL",
        'mappings[0].cast.weightKg: unknown cast "kilograms"',
        'synchronizations[0].conditions: unknown operator "=~"',
        "synchronizations[0].followUps[0]: no synchronization with reference 'keepers'",
    ]


def test_the_message_of_an_invalid_bundle_lists_its_problems(bundle):
    bundle["synchronizations"][0]["conditions"] = {"=~": [{"var": "name"}, "^A"]}

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_import(bundle)

    assert 'synchronizations[0].conditions: unknown operator "=~"' in str(caught.value)


def test_an_invalid_bundle_writes_nothing_not_even_its_valid_parts(rich_bundle):
    # Given a bundle whose sources, registers and mappings are fine, but whose last synchronization is not
    rich_bundle["synchronizations"][-1]["targetId"] = "nowhere"

    problems = problems_of(rich_bundle)

    assert problems == ["synchronizations[2].targetId: no source with reference 'nowhere'"]
    assert {model.__name__: model.objects.count() for model in MODELS} == dict.fromkeys(
        (model.__name__ for model in MODELS), 0
    )


def test_an_invalid_bundle_leaves_the_existing_configuration_unchanged(rich_bundle):
    # Given a configuration in place
    bundle_import(copy.deepcopy(rich_bundle))
    before = snapshot()

    # When a changed bundle with one problem is imported
    changed = copy.deepcopy(rich_bundle)
    changed["sources"][0]["location"] = "http://127.0.0.1:9999"
    changed["sources"][0]["credentials"] = {"token": "other"}
    changed["sources"].append({"reference": "new-api", "location": "http://127.0.0.1:9998"})
    changed["mappings"][0]["mapping"] = {}
    changed["synchronizations"][0]["followUps"] = []
    changed["synchronizations"][1]["conditions"] = {"=~": [{"var": "name"}, "^A"]}
    problems_of(changed)

    # Then nothing at all changed
    assert snapshot() == before


def test_a_yaml_bundle_imports_like_the_same_json_bundle(tmp_path, rich_bundle):
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(rich_bundle, sort_keys=False), encoding="utf-8")

    loaded = bundle_load(path)
    result = bundle_import(loaded)

    assert loaded == rich_bundle
    assert result.created == {"sources": 1, "registers": 1, "mappings": 3, "rules": 0, "synchronizations": 3}
    assert Synchronization.objects.get(reference="animals").conditions == {"==": [{"var": "status"}, "active"]}


def test_a_yml_file_is_read_as_yaml(tmp_path):
    path = tmp_path / "zoo.yml"
    path.write_text("sources:\n  - reference: zoo-api\n    location: http://127.0.0.1:8900\n", encoding="utf-8")

    assert bundle_load(path) == {"sources": [{"reference": "zoo-api", "location": "http://127.0.0.1:8900"}]}


def test_a_file_that_is_not_valid_json_gives_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"sources": [{"reference": "zoo-api",}]}', encoding="utf-8")

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_load(path)

    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: not valid json")
    assert "line 1" in problem


def test_a_file_that_is_not_valid_yaml_gives_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("sources:\n  - reference: [zoo-api\n", encoding="utf-8")

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_load(path)

    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: not valid yaml")


def test_a_file_that_is_not_text_gives_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "zoo.json"
    path.write_bytes(b'{"sources": [{"reference": "z\xe9bra"}]}')

    with pytest.raises(ConfigurationInvalid) as caught:
        bundle_load(path)

    assert str(path) in caught.value.problems[0]


@pytest.mark.parametrize("follow_ups", [["retired-animals"], ["animals"]], ids=["itself", "through another"])
def test_a_cycle_of_follow_ups_is_refused(rich_bundle, follow_ups):
    rich_bundle["synchronizations"][0]["followUps"] = ["retired-animals"]
    rich_bundle["synchronizations"][1]["followUps"] = follow_ups
    rich_bundle["synchronizations"][2]["followUps"] = []

    problems = problems_of(rich_bundle)

    assert any(problem.startswith("synchronizations[") and "cycle" in problem for problem in problems), problems


def test_a_mapping_that_maps_list_elements_with_an_unknown_mapping_is_refused(bundle):
    bundle["mappings"][0]["mapping"]["tags"] = "{{ tags | map_each('tag-in') }}"

    problems = problems_of(bundle)

    assert problems == ['mappings[0].mapping.tags: unknown mapping reference "tag-in"']


def test_a_mapping_may_map_list_elements_with_another_mapping_of_the_bundle(bundle):
    bundle["mappings"][0]["mapping"]["tags"] = "{{ tags | map_each('tag-in') }}"
    bundle["mappings"].append({"reference": "tag-in", "mapping": {"#": "{{ value | upper }}"}})

    result = bundle_import(bundle)

    assert result.created["mappings"] == 2


def test_a_reference_too_long_for_the_database_is_reported_with_its_path(bundle):
    bundle["sources"][0]["reference"] = "zoo-" + "a" * 130
    bundle["synchronizations"][0]["sourceId"] = bundle["sources"][0]["reference"]

    problems = problems_of(bundle)

    assert any(problem.startswith("sources[0].reference") for problem in problems), problems


def test_a_null_description_imports_as_an_empty_one(bundle):
    bundle["sources"][0]["description"] = None
    bundle["synchronizations"][0]["description"] = None

    bundle_import(bundle)

    assert Source.objects.get().description == ""


@pytest.mark.parametrize("kind", ["page", "next", "none", "auto"])
def test_a_synchronization_with_a_supported_pagination_type_imports(bundle, kind):
    bundle["synchronizations"][0]["sourceConfig"]["pagination"] = {"type": kind}

    bundle_import(bundle)

    assert Synchronization.objects.get().source_config["pagination"] == {"type": kind}


@pytest.mark.parametrize(
    "pagination",
    [
        {"type": "offset", "offsetParam": "offset", "limitParam": "limit", "limit": 100, "totalPath": "total"},
        {"type": "cursor", "cursorPath": "meta.next_cursor", "cursorParam": "cursor", "hasMorePath": "meta.has_more"},
        {"type": "link_header"},
    ],
    ids=["offset", "cursor", "link_header"],
)
def test_a_synchronization_with_a_pagination_type_of_the_spec_imports(bundle, pagination):
    bundle["synchronizations"][0]["sourceConfig"]["pagination"] = pagination

    bundle_import(bundle)

    assert Synchronization.objects.get().source_config["pagination"] == pagination


def test_an_openconnector_synchronization_with_numeric_ids_imports(bundle):
    # Given the zoo's source, mapping and schema in place
    bundle_import(copy.deepcopy(bundle))
    source, mapping = Source.objects.get(), Mapping.objects.get()
    schema = Schema.objects.get()

    # When an OpenConnector export of a synchronization refers to them by their numeric ids
    exported = {
        "id": 7, "reference": "oc-animals", "name": "Animals", "version": "0.0.1",
        "sourceType": "api", "sourceId": source.pk, "sourceConfig": {"endpoint": "/animals"},
        "sourceTargetMapping": str(mapping.pk), "conditions": [],
        "targetType": "register/schema", "targetId": f"{schema.register.pk}/{schema.pk}",
        "followUps": [],
    }
    bundle_import({"synchronizations": [exported]})

    # Then it is linked to the same objects
    sync = Synchronization.objects.get(reference="oc-animals")
    assert (sync.source, sync.source_target_mapping, sync.target_schema) == (source, mapping, schema)


# -- export -----------------------------------------------------------------------------------------------


def test_an_export_holds_what_was_imported(rich_bundle):
    bundle_import(copy.deepcopy(rich_bundle))

    exported = bundle_export()

    assert list(exported) == ["sources", "registers", "mappings", "rules", "synchronizations"]
    by_reference = {sync["reference"]: sync for sync in exported["synchronizations"]}
    for original in rich_bundle["synchronizations"]:
        written = by_reference[original["reference"]]
        for key, value in original.items():
            assert written[key] == (sorted(value) if key == "followUps" else value), key
    [source] = exported["sources"]
    assert {k: v for k, v in source.items() if k != "credentials"} == {
        "reference": "zoo-api", "name": "Zoo API (bundled sample source)", "description": "The loopback zoo",
        "type": "api", "location": LOCATION, "configuration": {"headers": {"Accept": "application/json"}},
        "isEnabled": True,
    }
    assert exported["registers"][0]["schemas"][0]["schema"] == rich_bundle["registers"][0]["schemas"][0]["schema"]
    assert {m["reference"]: m["cast"] for m in exported["mappings"]} == {
        "animal-hash": {}, "animal-in": {"legs": "int"}, "animal-out": {"legs": ["int", "string"]},
    }


def test_export_then_import_into_an_emptied_database_gives_the_same_document(rich_bundle):
    # Given an export of a configuration
    bundle_import(rich_bundle)
    first = bundle_export()

    # When the database is emptied and the export imported
    empty_the_database()
    assert not Source.objects.exists()
    result = bundle_import(json.loads(json.dumps(first)))

    # Then everything is back, and a second export is the same document but for the credentials, which
    # no export carries: the placeholder that stood for them has nothing to keep in an empty database
    assert result.created == {"sources": 1, "registers": 1, "mappings": 3, "rules": 0, "synchronizations": 3}
    assert first["sources"][0].pop("credentials") == CREDENTIALS_KEPT
    assert bundle_export() == first


def test_an_empty_database_exports_an_empty_bundle_that_imports():
    exported = bundle_export()

    assert exported == {"sources": [], "registers": [], "mappings": [], "rules": [], "synchronizations": []}
    bundle_validate(exported)


def test_credentials_are_never_exported(rich_bundle):
    bundle_import(rich_bundle)

    exported = bundle_export()

    assert exported["sources"][0]["credentials"] == CREDENTIALS_KEPT
    assert SECRET not in json.dumps(exported)


def test_reimporting_an_export_keeps_the_stored_credentials(rich_bundle):
    # Given a source with credentials, exported (without them)
    bundle_import(rich_bundle)
    exported = bundle_export()

    # When the export is imported over it
    bundle_import(exported)

    # Then the credentials are still there
    assert Source.objects.get().credentials == {"type": "bearer", "token": SECRET}


def test_the_example_bundle_in_the_repository_is_valid():
    bundle = json.loads((Path(__file__).resolve().parents[2] / "examples" / "zoo.json").read_text())

    bundle_validate(bundle)


def examples_without_databases() -> list[Path]:
    """Return the example bundles that read no database: one that does is checked against the machine's
    PostgreSQL (tests/syncapp/sources/test_database.py), since saving it asks the database."""
    paths = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))
    return [path for path in paths if not any(
        source.get("type") == "database" for source in json.loads(path.read_text()).get("sources", [])
    )]


@pytest.mark.parametrize("path", examples_without_databases(), ids=lambda path: path.name)
def test_every_example_bundle_is_valid(path):
    bundle_validate(json.loads(path.read_text()))
