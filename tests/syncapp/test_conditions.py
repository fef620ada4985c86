"""Test syncapp.conditions: the JSON Logic conformance suite, the reduce fix, the refused operators."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

import json_logic
import pytest

from syncapp.conditions import ConditionError, evaluate_conditions, evaluate_rule, validate_conditions

# The repository is parents[2]; CI clones it with shared/ beside it, as /work/main and /work/shared.
CONFORMANCE_FILE = Path(__file__).resolve().parents[3] / "shared/conformance/jsonlogic/compatible.json"


def _failing_param(message: str) -> Any:
    """Build a parameter set that makes the conformance test fail with ``message``."""
    return pytest.param(None, None, None, message, id="conformance-suite-unusable")


def _conformance_params() -> list[Any]:
    """Read every case of the conformance suite as a pytest parameter set."""
    if not CONFORMANCE_FILE.is_file():
        return [_failing_param(f"JSON Logic conformance suite not found at {CONFORMANCE_FILE}")]
    try:
        entries = json.loads(CONFORMANCE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [_failing_param(f"cannot read the JSON Logic conformance suite {CONFORMANCE_FILE}: {exc}")]
    params = []
    section = ""
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            section = entry
            continue
        if not isinstance(entry, dict) or "rule" not in entry or "result" not in entry:
            return [_failing_param(f"entry {index} of {CONFORMANCE_FILE} is neither a title nor a case")]
        description = entry.get("description") or json.dumps(entry["rule"])
        params.append(
            pytest.param(
                entry["rule"],
                entry.get("data"),
                entry["result"],
                None,
                id=f"{index:03d} {section}: {description}",
            )
        )
    if not params:
        return [_failing_param(f"the JSON Logic conformance suite {CONFORMANCE_FILE} has no cases")]
    return params


def _json_type(value: Any) -> str:
    """Name the JSON type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _json_equal(actual: Any, expected: Any) -> bool:
    """Tell whether two values are equal as JSON: same types (bool is no number), 1 equals 1.0."""
    if _json_type(actual) != _json_type(expected):
        return False
    if isinstance(actual, list | tuple):
        return len(actual) == len(expected) and all(map(_json_equal, actual, expected))
    if isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            _json_equal(actual[key], expected[key]) for key in actual
        )
    if isinstance(actual, float) and isinstance(expected, float) and math.isnan(actual):
        return math.isnan(expected)
    return actual == expected


def test_the_conformance_suite_sits_beside_the_repository() -> None:
    """Check that the parents index leads from this file to the shared/ sibling of the repository."""
    repository = Path(__file__).resolve().parents[2]
    assert (repository / "pyproject.toml").is_file()
    expected = repository.parent / "shared/conformance/jsonlogic/compatible.json"
    assert expected == CONFORMANCE_FILE
    assert CONFORMANCE_FILE.is_file(), f"JSON Logic conformance suite not found at {CONFORMANCE_FILE}"


@pytest.mark.parametrize(("rule", "data", "expected", "unusable"), _conformance_params())
def test_every_case_of_the_conformance_suite_gives_the_expected_result(
    rule: Any, data: Any, expected: Any, unusable: str | None
) -> None:
    """Evaluate one case of the public JSON Logic suite and compare its result as JSON."""
    if unusable:
        pytest.fail(unusable)
    result = evaluate_rule(rule=rule, data=data)
    assert _json_equal(result, expected), (
        f"{json.dumps(rule)} on {json.dumps(data)}: {result!r} != {expected!r}"
    )


def test_json_comparison_tells_booleans_from_numbers() -> None:
    """Check the comparison used for the suite: bool is not a number, 1 and 1.0 are the same number."""
    assert _json_equal(1, 1.0)
    assert _json_equal([1, {"a": None}], [1.0, {"a": None}])
    assert not _json_equal(True, 1)
    assert not _json_equal(0, False)
    assert not _json_equal([False], [0])
    assert not _json_equal("1", 1)


@pytest.mark.parametrize("conditions", [None, {}, []])
@pytest.mark.parametrize("data", [None, {}, {"status": "inactive"}, [1, 2]])
def test_empty_conditions_let_every_object_pass(conditions: Any, data: Any) -> None:
    """Pass every object when there are no conditions."""
    assert evaluate_conditions(conditions=conditions, data=data) is True
    assert validate_conditions(conditions) == []


def test_a_status_filter_passes_only_active_objects() -> None:
    """Filter objects on a field with the typical equality rule."""
    conditions = {"==": [{"var": "status"}, "active"]}
    assert validate_conditions(conditions) == []
    assert evaluate_conditions(conditions=conditions, data={"status": "active"}) is True
    assert evaluate_conditions(conditions=conditions, data={"status": "inactive"}) is False
    assert evaluate_conditions(conditions=conditions, data={}) is False
    assert evaluate_conditions(conditions=conditions, data=None) is False


XXLLNC_CONDITIONS = {"and": [{"!!": {"var": "values.attribute&#46;woo_categorie"}},
                              {"!!": {"var": "values.case&#46;subject"}},
                              {"!!": {"var": "values.attribute&#46;woo_publicatiedatum"}}]}


def test_an_encoded_dot_in_a_var_path_names_a_key_that_holds_a_dot_as_openconnector_writes_it() -> None:
    # given the conditions of OpenConnector's xxllnc zoek endpoint synchronization, and cases keyed as xxllnc keys them
    published = {"values": {"attribute.woo_categorie": ["besluit"], "case.subject": "Vergunning",
                            "attribute.woo_publicatiedatum": "2024-05-01"}}
    unpublished = {"values": {**published["values"], "attribute.woo_publicatiedatum": None}}

    # then the published case passes and the one without a publication date does not
    assert evaluate_conditions(conditions=XXLLNC_CONDITIONS, data=published) is True
    assert evaluate_conditions(conditions=XXLLNC_CONDITIONS, data=unpublished) is False
    # and `missing` reads the same paths
    missing = {"missing": ["values.case&#46;subject", "values.case&#46;status"]}
    assert evaluate_rule(rule=missing, data=published) == ["values.case&#46;status"]


@pytest.mark.parametrize(
    ("value", "passes"),
    [
        (0, False),
        ("", False),
        ([], False),
        (None, False),
        (False, False),
        ("0", True),
        ([0], True),
        (1, True),
    ],
)
def test_conditions_pass_on_json_logic_truthiness(value: Any, passes: bool) -> None:
    """Decide with JSON Logic truthiness: "0" and [0] are truthy, 0, "", [] and null are falsy."""
    assert evaluate_conditions(conditions={"var": "value"}, data={"value": value}) is passes


def test_reduce_evaluates_its_initial_value_as_logic() -> None:
    """Start the fold from the value of the third argument, not from the rule itself."""
    rule = {
        "reduce": [
            {"var": "integers"},
            {"+": [{"var": "current"}, {"var": "accumulator"}]},
            {"var": "start_with"},
        ]
    }
    assert evaluate_rule(rule=rule, data={"integers": [1, 2, 3, 4], "start_with": 59}) == 69
    assert evaluate_rule(rule=rule, data={"integers": [], "start_with": 59}) == 59
    assert evaluate_rule(rule=rule, data={"integers": "not an array", "start_with": 7}) == 7


def test_reduce_fix_is_what_the_library_now_runs() -> None:
    """Check that the library itself uses the corrected reduce once conditions is imported."""
    rule = {"reduce": [[1, 2], {"*": [{"var": "current"}, {"var": "accumulator"}]}, {"+": [1, 2]}]}
    assert json_logic.jsonLogic(rule, None) == 6


def test_unknown_operators_are_reported_with_their_location() -> None:
    """Report every unknown operator, however deep, with the path to the rule that uses it."""
    conditions = {
        "and": [
            {"==": [{"var": "status"}, "active"]},
            {"=~": [{"var": "name"}, "^a"]},
            {"or": [True, {"some": [{"var": "tags"}, {"startswith": [{"var": ""}, "x"]}]}]},
            {"!": {"nope": []}},
        ]
    }
    assert validate_conditions(conditions) == [
        'conditions.and[1]: unknown operator "=~"',
        'conditions.and[2].or[1].some[1]: unknown operator "startswith"',
        'conditions.and[3].!: unknown operator "nope"',
    ]
    assert validate_conditions({"=~": []}, path="sync.conditions") == [
        'sync.conditions: unknown operator "=~"'
    ]


def test_a_rule_dict_must_have_exactly_one_key() -> None:
    """Report dicts with no key or several keys where a rule is expected."""
    conditions = {"and": [{}, {"==": [1, 1], "!=": [1, 2]}]}
    assert validate_conditions(conditions) == [
        "conditions.and[0]: a rule must have exactly one key (the operator), found none",
        'conditions.and[1]: a rule must have exactly one key (the operator), found 2 ("==", "!=")',
    ]


def test_every_operator_of_the_library_except_method_is_known() -> None:
    """Accept the operators of the library's tables and refuse its method operator."""
    allowed = sorted(set(json_logic.operations) - {"method"})
    assert {"==", "var", "reduce", "missing_some", "if", "merge"} <= set(allowed)
    assert validate_conditions([{operator: []} for operator in allowed]) == []
    assert validate_conditions({"method": ["abc", "upper"]}) == [
        'conditions: operator "method" is not allowed'
    ]


def test_validation_refuses_the_dot_notation_call_syntax() -> None:
    """Report a dotted custom-operation call as an unknown operator."""
    conditions = {"==": [{"datetime.datetime.now": []}, None]}
    assert validate_conditions(conditions) == ['conditions.==[0]: unknown operator "datetime.datetime.now"']


def test_evaluation_refuses_the_dot_notation_call_syntax_even_when_the_library_would_resolve_it() -> None:
    """Refuse to evaluate a dotted call although the library could reach the registered object."""
    rule = {"<": [{"datetime.date": [2018, 1, 1]}, {"datetime.date.today": []}]}
    json_logic.add_operation("datetime", datetime)
    try:
        assert json_logic.jsonLogic(rule) is True  # What the library alone would do.
        with pytest.raises(ConditionError, match=r'unknown operator "datetime\.date"'):
            evaluate_rule(rule=rule, data={})
        with pytest.raises(ConditionError, match=r'unknown operator "datetime\.date\.today"'):
            evaluate_conditions(conditions=rule, data={})
    finally:
        json_logic.rm_operation("datetime")


def test_evaluation_refuses_the_method_operator() -> None:
    """Refuse to evaluate method, which would call any attribute of any value."""
    with pytest.raises(ConditionError, match=r'operator "method" is not allowed'):
        evaluate_rule(rule={"method": ["", "__getattribute__", ["__class__"]]}, data=None)


def test_evaluation_errors_raise_condition_error_naming_the_problem() -> None:
    """Turn the library's failures into ConditionError with a useful message."""
    with pytest.raises(ConditionError, match=r'unknown operator "=~"'):
        evaluate_conditions(conditions={"=~": [{"var": "name"}, "^a"]}, data={"name": "abc"})
    with pytest.raises(ConditionError, match="cannot evaluate rule: ZeroDivisionError"):
        evaluate_rule(rule={"/": [{"var": "a"}, 0]}, data={"a": 1})
    with pytest.raises(ConditionError, match="cannot evaluate rule: ValueError"):
        evaluate_conditions(conditions={"+": [1, "one"]}, data=None)
    assert issubclass(ConditionError, ValueError)


def test_validation_does_not_overflow_on_a_deeply_nested_rule() -> None:
    """Walk a very deep rule without recursion."""
    rule: Any = {"var": "x"}
    for _ in range(5000):
        rule = {"!": [rule]}
    rule = {"!": [{"??": []}, rule]}
    assert validate_conditions(rule) == ['conditions.![0]: unknown operator "??"']
