"""Twig's own fixture tests against syncapp.twig: every fixture of a supported feature passes, except the
known failures listed with their reason in syncapp.twig.conformance; the README's table is the current one."""
from __future__ import annotations

from pathlib import Path

import pytest

from syncapp.management.commands.twig_conformance import DEFAULT_FIXTURES, README, readme_with_table
from syncapp.twig.conformance import (
    FAIL,
    KNOWN_FAILURES,
    NOT_APPLICABLE,
    PASS,
    NotApplicable,
    conformance_table,
    fixture_feature,
    parse_php_literal,
    run_fixture,
    run_fixtures,
)

# The repository is parents[2]; CI clones it with shared/ beside it, as /work/main and /work/shared.
FIXTURES = Path(__file__).resolve().parents[3] / "shared/conformance/twig/Fixtures"


@pytest.fixture(scope="module")
def results():
    assert FIXTURES.is_dir(), f"Twig's fixtures are not at {FIXTURES}"
    return run_fixtures(FIXTURES)


def test_every_fixture_passes_except_the_known_failures(results):
    unexpected = [f"{r.path}: {r.detail}" for r in results if r.outcome == FAIL and r.path not in KNOWN_FAILURES]

    assert unexpected == [], "fixtures that fail and are not known failures (regressions):\n" + "\n".join(unexpected)


def test_a_known_failure_that_passes_leaves_the_list(results):
    outcomes = {r.path: r.outcome for r in results}

    fixed = [path for path in KNOWN_FAILURES if outcomes.get(path) != FAIL]

    assert fixed == [], f"these pass (or are gone) now: remove them from KNOWN_FAILURES: {fixed}"


def test_most_fixtures_apply_and_pass(results):
    passed = sum(r.outcome == PASS for r in results)

    assert passed >= 154, f"only {passed} fixtures pass"


def test_the_readme_table_is_the_current_one(results):
    readme = README.read_text(encoding="utf-8")

    assert readme_with_table(readme, conformance_table(results)) == readme, (
        "run `manage.py twig_conformance --write` and commit README.md"
    )


def test_the_command_reads_the_fixtures_beside_the_repository():
    assert DEFAULT_FIXTURES.resolve() == FIXTURES.resolve()


def test_a_fixture_with_a_wrong_expectation_fails():
    fixture = "--TEST--\nx\n--TEMPLATE--\n{{ 1 + 1 }}\n--DATA--\nreturn []\n--EXPECT--\n3\n"

    outcome, detail = run_fixture(fixture)

    assert outcome == FAIL
    assert "'2'" in detail


def test_a_fixture_expecting_a_syntax_error_passes_when_the_template_does_not_parse():
    fixture = "--TEST--\nx\n--TEMPLATE--\n{% if %}\n--DATA--\nreturn []\n--EXCEPTION--\nTwig\\Error\\SyntaxError: x\n"

    assert run_fixture(fixture) == (PASS, "")


def test_a_fixture_whose_data_builds_php_objects_is_not_applicable():
    fixture = "--TEST--\nx\n--TEMPLATE--\n{{ a }}\n--DATA--\nreturn ['a' => new \\stdClass()]\n--EXPECT--\n\n"

    assert run_fixture(fixture)[0] == NOT_APPLICABLE


def test_php_array_literals_read_as_lists_and_mappings():
    value, timezone = parse_php_literal(
        "date_default_timezone_set('Europe/Paris');\n"
        "return ['a' => [1, 2.5, 'x\\'y', \"t\\tz\"], 'b' => array(1 => true, '2' => null), 'c' => []] // note"
    )

    assert value == {"a": [1, 2.5, "x'y", "t\tz"], "b": {1: True, 2: None}, "c": []}
    assert timezone == "Europe/Paris"


def test_php_code_that_is_not_a_literal_is_not_applicable():
    with pytest.raises(NotApplicable):
        parse_php_literal("return ['a' => new \\stdClass()]")


def test_dates_and_zones_of_fixture_data_read_as_python_dates():
    value, _ = parse_php_literal(
        "date_default_timezone_set('Europe/Paris');\n"
        "return ['t' => mktime(13, 45, 0, 10, 4, 2010),"
        " 'd' => new \\DateTime('2010-10-04 13:45', new \\DateTimeZone('UTC'))]"
    )

    assert value["t"] == 1286192700  # 13:45 in Paris, summer time
    assert value["d"].isoformat() == "2010-10-04T13:45:00+00:00"


@pytest.mark.parametrize(("path", "feature"), [
    ("filters/batch_with_fill.test", "filter batch"),
    ("filters/number_format_default.test", "filter number_format"),
    ("tags/for/loop_context.test", "tag for"),
    ("tests/null_coalesce.legacy.test", "test null"),
    ("expressions/power.test", "expression power"),
])
def test_a_fixture_counts_for_the_feature_its_name_says(path, feature):
    assert fixture_feature(path) == feature
