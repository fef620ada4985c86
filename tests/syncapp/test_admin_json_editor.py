"""The admin's JSON fields are editors (CodeMirror, vendored in our static files): the pages load them from
this server, with DEBUG off too, and the textareas under them keep the server's behaviour."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from syncapp.sources import source_config_schemas
from syncapp.targets import target_config_schemas
from tests.factories import FACTORIES, SECRET, make_mapping, make_schema, make_source, make_synchronization
from tests.syncapp.test_admin import admin_url, source_change_form, synchronization_form

pytestmark = pytest.mark.django_db

STATIC = Path(__file__).resolve().parents[2] / "syncapp" / "static" / "syncapp"
VENDORED = [
    "LICENSE", "README.md", "lib/codemirror.js", "lib/codemirror.css", "mode/javascript/javascript.js",
    "addon/edit/matchbrackets.js", "addon/edit/closebrackets.js", "addon/lint/lint.js", "addon/lint/lint.css",
    "addon/fold/foldcode.js", "addon/fold/foldgutter.js", "addon/fold/foldgutter.css", "addon/fold/brace-fold.js",
    "addon/hint/show-hint.js", "addon/hint/show-hint.css",
]
# The JSON fields of each change form.
JSON_FIELDS = {
    "syncapp.source": ["configuration", "new_credentials"],
    "syncapp.synchronization": ["source_config", "conditions", "target_config"],
    "syncapp.mapping": ["mapping", "unset", "cast"],
    "syncapp.schema": ["schema"],
    "syncapp.rule": ["conditions", "configuration"],
}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class Page(HTMLParser):
    """The scripts, stylesheets, every URL attribute, the textareas (attributes and text) and the selects (their
    options' values, by id) of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.urls: list[str] = []
        self.textareas: dict[str, dict[str, Any]] = {}
        self.selects: dict[str, list[str]] = {}
        self._textarea: dict[str, Any] | None = None
        self._select: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.urls += [value for name, value in attrs if name in {"src", "href", "action", "srcset"} and value]
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"])
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes["href"])
        if tag == "textarea":
            self._textarea = {"attrs": attributes, "text": ""}
            self.textareas[attributes.get("name", "")] = self._textarea
        if tag == "select":
            self._select = self.selects.setdefault(attributes.get("id", ""), [])
        if tag == "option" and self._select is not None:
            self._select.append(attributes.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        if tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea["text"] += data


def change_page(client, label: str, instance: Any) -> Page:
    response = client.get(admin_url(label, "change", instance.pk))
    assert response.status_code == 200
    return Page(response.content.decode())


@pytest.mark.parametrize("label", list(JSON_FIELDS))
def test_the_change_form_turns_its_json_fields_into_editors_loaded_from_this_server(admin_client, label):
    page = change_page(admin_client, label, FACTORIES[label]())

    assert "/static/syncapp/vendor/codemirror/lib/codemirror.js" in page.scripts
    assert "/static/syncapp/json-editor.js" in page.scripts
    assert page.scripts.index("/static/syncapp/vendor/codemirror/lib/codemirror.js") < page.scripts.index(
        "/static/syncapp/json-editor.js")
    # The completion add-on and the schema reading come before the editor that uses them.
    for script in ("/static/syncapp/vendor/codemirror/addon/hint/show-hint.js", "/static/syncapp/json-schema.js"):
        assert page.scripts.index(script) < page.scripts.index("/static/syncapp/json-editor.js"), script
    assert "/static/syncapp/vendor/codemirror/addon/hint/show-hint.css" in page.stylesheets
    assert "/static/syncapp/vendor/codemirror/lib/codemirror.css" in page.stylesheets
    assert "/static/syncapp/json-editor.css" in page.stylesheets
    for field in JSON_FIELDS[label]:
        assert "data-json-editor" in page.textareas[field]["attrs"], field
        assert page.textareas[field]["attrs"]["id"] == f"id_{field}"


@pytest.mark.parametrize("label", list(JSON_FIELDS))
def test_the_change_form_loads_nothing_from_another_host(admin_client, label):
    instance = FACTORIES[label]()
    html = admin_client.get(admin_url(label, "change", instance.pk)).content.decode()
    page = Page(html)

    # The only absolute URLs are data: the SVG namespace of the admin's icons and a source's own location.
    data = {"http://www.w3.org/2000/svg", getattr(instance, "location", None)}
    assert set(re.findall(r"""https?://[^\s"'<>&]+""", html)) <= data

    assert "/static/syncapp/json-editor.js" in page.scripts
    assert "/static/syncapp/vendor/codemirror/lib/codemirror.css" in page.stylesheets
    for url in page.urls:
        assert not re.match(r"^([a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE), url


@pytest.mark.parametrize("label", list(JSON_FIELDS))
def test_every_script_and_stylesheet_of_the_change_form_is_served_with_debug_off(admin_client, settings, label):
    settings.DEBUG = False
    page = change_page(admin_client, label, FACTORIES[label]())

    assert {"/static/syncapp/json-editor.js", "/static/syncapp/vendor/codemirror/addon/lint/lint.js"} <= {*page.scripts}
    assert "/static/syncapp/json-editor.css" in page.stylesheets
    for url, kind in [*((url, "javascript") for url in page.scripts), *((url, "text/css") for url in page.stylesheets)]:
        answer = admin_client.get(url)
        assert answer.status_code == 200, url
        assert kind in answer["Content-Type"], (url, answer["Content-Type"])


@pytest.mark.parametrize(("field", "select", "schemas"), [
    ("source_config", "id_source_type", source_config_schemas),
    ("target_config", "id_target_type", target_config_schemas),
])
def test_a_synchronization_config_editor_carries_the_declared_schema_of_each_type_and_the_select_choosing_one(
    admin_client, field, select, schemas,
):
    sync = make_synchronization()

    pages = [change_page(admin_client, "syncapp.synchronization", sync),
             Page(admin_client.get(admin_url("syncapp.synchronization", "add")).content.decode())]

    for page in pages:
        attrs = page.textareas[field]["attrs"]
        assert json.loads(attrs["data-json-schemas"]) == schemas()
        assert attrs["data-schema-selector"] == f"#{select}"
        # Every type the select offers has its schema, and no schema is of a type it does not offer.
        assert {value for value in page.selects[select] if value} == set(schemas())
        assert "data-json-schemas" not in page.textareas["conditions"]["attrs"]


def test_the_synchronization_form_names_the_keys_each_type_declares_in_its_help_texts(admin_client):
    form = admin_client.get(admin_url("syncapp.synchronization", "add")).context["adminform"].form

    source_help = form.fields["source_config"].help_text
    target_help = form.fields["target_config"].help_text

    database_keys = re.search(r"database: ([^;]+);", source_help).group(1).split(", ")
    assert {"table", "keyColumn", "idColumn"} <= set(database_keys)
    shared = re.search(r"every source type: ([^;]+);", source_help).group(1).split(", ")
    assert "chunkSize" in shared and "chunkSize" not in database_keys  # said once, for every type
    assert "endpoint" in re.search(r"api: ([^;]+);", source_help).group(1).split(", ")
    assert "keyColumn" not in re.search(r"api: ([^;]+);", source_help).group(1)
    assert "recreateOnNotFound" in re.search(r"api: ([^;]+);", target_help).group(1)
    assert "register/schema: none." in target_help


def test_the_vendored_editor_is_complete_and_says_which_version_it_is():
    vendor = STATIC / "vendor" / "codemirror"

    for name in VENDORED:
        assert (vendor / name).is_file(), name
    version = re.search(r'CodeMirror\.version = "([\d.]+)"', (vendor / "lib/codemirror.js").read_text()).group(1)
    assert f"CodeMirror {version}" in (vendor / "README.md").read_text()
    assert "MIT License" in (vendor / "LICENSE").read_text()


def test_the_editor_script_is_served_as_it_is_in_the_repository_with_debug_off(client, settings):
    settings.DEBUG = False

    answer = client.get("/static/syncapp/json-editor.js")

    assert answer.status_code == 200
    assert b"".join(answer.streaming_content if answer.streaming else [answer.content]) == (
        STATIC / "json-editor.js").read_bytes()


def test_json_values_are_still_shown_indented_in_the_editors_textareas(admin_client):
    sync = make_synchronization(conditions={"and": [{"==": [{"var": "status"}, "active"]}]})
    mapping = make_mapping(reference="legs", mapping={"name": "title"}, unset=["secret"])
    schema = make_schema(register=sync.target_schema.register, reference="plant")

    synchronization = change_page(admin_client, "syncapp.synchronization", sync)
    mapping_page = change_page(admin_client, "syncapp.mapping", mapping)
    schema_page = change_page(admin_client, "syncapp.schema", schema)

    conditions = synchronization.textareas["conditions"]
    assert "data-json-editor" in conditions["attrs"]
    assert conditions["text"].strip() == json.dumps(sync.conditions, indent=2)
    assert mapping_page.textareas["unset"]["text"].strip() == '[\n  "secret"\n]'
    assert "data-json-editor" in schema_page.textareas["schema"]["attrs"]
    schema.refresh_from_db()  # as stored: PostgreSQL orders an object's keys its own way
    assert schema_page.textareas["schema"]["text"].strip() == json.dumps(schema.schema, indent=2)


def test_invalid_json_of_a_refused_form_is_shown_back_in_the_editor_as_typed(admin_client):
    sync = make_synchronization()
    typed = '{"==": [{"var": "status"}, "active"\n  oops'
    data = synchronization_form(source=sync.source, schema=sync.target_schema, mapping=sync.source_target_mapping,
                                conditions=typed)

    response = admin_client.post(admin_url("syncapp.synchronization", "change", sync.pk), data)

    assert response.status_code == 200
    assert "conditions" in response.context["adminform"].form.errors
    conditions = Page(response.content.decode()).textareas["conditions"]
    assert "data-json-editor" in conditions["attrs"]
    assert conditions["text"].strip() == typed


def test_the_credentials_editor_starts_empty_even_on_a_form_refused_for_another_field(admin_client):
    source = make_source()
    stored = change_page(admin_client, "syncapp.source", source)

    refused = admin_client.post(
        admin_url("syncapp.source", "change", source.pk),
        source_change_form(source, location="", new_credentials=json.dumps({"token": "typed-" + SECRET})),
    )

    assert refused.status_code == 200
    assert "location" in refused.context["adminform"].form.errors
    for page in (stored, Page(refused.content.decode())):
        credentials = page.textareas["new_credentials"]
        assert "data-json-editor" in credentials["attrs"] and "data-json-editor-write-only" in credentials["attrs"]
        assert credentials["text"].strip() == ""
    assert SECRET not in refused.content.decode()


def test_the_try_page_of_a_mapping_edits_its_sample_in_the_json_editor(admin_client):
    mapping = make_mapping()

    response = admin_client.get(reverse("admin:syncapp_mapping_try", args=[mapping.pk]))

    assert response.status_code == 200
    page = Page(response.content.decode())
    assert "/static/syncapp/json-editor.js" in page.scripts
    assert "data-json-editor" in page.textareas["sample"]["attrs"]
