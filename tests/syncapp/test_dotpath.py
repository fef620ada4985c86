"""Dot paths into nested JSON."""

import copy
import pickle

import pytest

from syncapp.dotpath import MISSING, delete_path, get_path, has_path, set_path


@pytest.fixture
def order() -> dict:
    return {
        "id": 7,
        "customer": {"name": "Ada", "email": None},
        "lines": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
        "meta.source": "shop",
    }


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("id", 7),
        ("customer.name", "Ada"),
        ("lines.0.sku", "A1"),
        ("lines.1.qty", 1),
        ("meta.source", "shop"),
    ],
)
def test_get_path_walks_dicts_by_key_and_lists_by_index(order: dict, path: str, expected: object) -> None:
    assert get_path(order, path) == expected


@pytest.mark.parametrize("path", ["", "."])
def test_empty_path_returns_the_data_itself(order: dict, path: str) -> None:
    assert get_path(order, path) is order


@pytest.mark.parametrize("path", ["nope", "customer.phone", "lines.2", "lines.-1", "lines.first", "id.x"])
def test_absent_path_returns_missing(order: dict, path: str) -> None:
    assert get_path(order, path) is MISSING


def test_absent_path_returns_the_given_default(order: dict) -> None:
    assert get_path(order, "customer.phone", default="n/a") == "n/a"


def test_null_value_is_returned_not_mistaken_for_absence(order: dict) -> None:
    assert get_path(order, "customer.email", default="n/a") is None
    assert has_path(order, "customer.email")


def test_longest_literal_key_is_preferred() -> None:
    data = {"a.b": {"c": "literal"}, "a": {"b": {"c": "nested"}}}
    assert get_path(data, "a.b.c") == "literal"


def test_shorter_reading_is_used_when_the_longest_key_leads_nowhere() -> None:
    data = {"a.b": {"x": 1}, "a": {"b": {"c": "nested"}}}
    assert get_path(data, "a.b.c") == "nested"


def test_key_with_dots_inside_a_nested_object_is_found() -> None:
    data = {"links": {"https://example.org/a.json": {"status": 200}}}
    assert get_path(data, "links.https://example.org/a.json.status") == 200


@pytest.mark.parametrize(("path", "expected"), [("id", True), ("lines.1", True), ("lines.5", False), ("x", False)])
def test_has_path_reports_existence(order: dict, path: str, expected: bool) -> None:
    assert has_path(order, path) is expected


def test_set_path_creates_intermediate_dicts() -> None:
    data: dict = {}
    set_path(data, "a.b.c", 1)
    assert data == {"a": {"b": {"c": 1}}}


def test_set_path_sets_an_existing_literal_key_equal_to_the_whole_path() -> None:
    data = {"meta.source": "shop"}
    set_path(data, "meta.source", "api")
    assert data == {"meta.source": "api"}


def test_set_path_follows_an_existing_dotted_key() -> None:
    data: dict = {"a.b": {}}
    set_path(data, "a.b.c", 1)
    assert data == {"a.b": {"c": 1}}


def test_set_path_replaces_the_value_get_path_finds() -> None:
    data = {"a.b": {"x": 1}, "a": {"b": {"c": "old"}}}
    set_path(data, "a.b.c", "new")
    assert data == {"a.b": {"x": 1}, "a": {"b": {"c": "new"}}}


def test_set_path_replaces_and_appends_list_elements(order: dict) -> None:
    set_path(order, "lines.0.qty", 5)
    set_path(order, "lines.2", {"sku": "C3"})
    assert order["lines"] == [{"sku": "A1", "qty": 5}, {"sku": "B2", "qty": 1}, {"sku": "C3"}]


def test_set_path_replaces_a_null_in_the_way(order: dict) -> None:
    set_path(order, "customer.email.primary", "ada@example.org")
    assert order["customer"]["email"] == {"primary": "ada@example.org"}


@pytest.mark.parametrize("path", ["id.x", "customer.name.first", "lines.9", "lines.x"])
def test_set_path_refuses_to_clobber_a_value_in_the_way(order: dict, path: str) -> None:
    before = copy.deepcopy(order)
    with pytest.raises(ValueError, match="cannot set"):
        set_path(order, path, 1)
    assert order == before


@pytest.mark.parametrize("path", ["", "."])
def test_set_path_refuses_the_empty_path(path: str) -> None:
    with pytest.raises(ValueError, match="empty path"):
        set_path({}, path, 1)


@pytest.mark.parametrize(
    ("path", "remaining"),
    [
        ("id", {"customer", "lines", "meta.source"}),
        ("meta.source", {"id", "customer", "lines"}),
    ],
)
def test_delete_path_removes_the_key(order: dict, path: str, remaining: set) -> None:
    assert delete_path(order, path) is True
    assert set(order) == remaining


def test_delete_path_removes_list_elements_and_nested_keys(order: dict) -> None:
    assert delete_path(order, "lines.0") is True
    assert delete_path(order, "customer.email") is True
    assert order["lines"] == [{"sku": "B2", "qty": 1}]
    assert order["customer"] == {"name": "Ada"}


@pytest.mark.parametrize("path", ["nope", "lines.7", "customer.name.first", "", "."])
def test_delete_path_reports_nothing_removed(order: dict, path: str) -> None:
    before = copy.deepcopy(order)
    assert delete_path(order, path) is False
    assert order == before


def test_missing_is_falsy_and_survives_copying_and_pickling() -> None:
    assert not MISSING
    assert repr(MISSING) == "MISSING"
    assert copy.deepcopy(MISSING) is MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING


def test_path_must_be_a_string(order: dict) -> None:
    with pytest.raises(TypeError):
        get_path(order, 3)  # type: ignore[arg-type]


def test_an_encoded_dot_names_a_key_that_holds_a_dot_as_openconnector_writes_it() -> None:
    # given an object whose keys hold dots, as xxllnc's zoek endpoint answers
    case = {"values": {"attribute.woo_categorie": ["besluit"], "attribute": {"woo_categorie": "shadowed"}}}

    # then &#46; reads, tests, sets and deletes the dotted key itself, never the nested one
    assert get_path(case, "values.attribute&#46;woo_categorie") == ["besluit"]
    assert has_path(case, "values.attribute&#46;woo_categorie")
    assert get_path(case, "values.attribute&#46;woo_titel") is MISSING
    set_path(case, "values.attribute&#46;woo_titel", "Besluit")
    set_path(case, "summary&#46;title", "Besluit")
    assert case["values"]["attribute.woo_titel"] == "Besluit" and case["summary.title"] == "Besluit"
    assert delete_path(case, "values.attribute&#46;woo_categorie")
    assert case["values"] == {"attribute": {"woo_categorie": "shadowed"}, "attribute.woo_titel": "Besluit"}
