"""Run Twig's own fixture tests (``.test`` files) against this engine and count what passes per feature.

A fixture has ``--TEMPLATE--``, then ``--DATA--`` (a PHP ``return [...]`` literal), optional ``--CONFIG--``
and ``--EXPECT--`` (repeated), or one ``--EXCEPTION--``. As Twig's IntegrationTestCase, the environment
has ``strict_variables`` on and autoescape ``html`` unless the config says otherwise, and outputs are
compared after trimming newlines and spaces at both ends. An expected exception passes when the render
fails with the same kind of error (syntax or runtime), whatever its wording. Fixtures whose data builds
PHP objects or calls PHP functions, or whose templates need other templates (``--TEMPLATE(name)--``), are
not applicable to a Python engine and are counted apart; but DateTime, DateTimeImmutable and DateTimeZone
are read as Python dates and zones, mktime() is computed, and an ArrayObject or ArrayIterator is read as
the array it wraps (a fixture that depends on it being an object then fails, and says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncapp.twig import php, phpdate
from syncapp.twig.engine import Environment
from syncapp.twig.errors import TwigError, TwigRuntimeError, TwigSyntaxError

__all__ = ["FixtureResult", "NotApplicable", "parse_php_literal", "run_fixture", "run_fixtures"]

PASS = "pass"
FAIL = "fail"
NOT_APPLICABLE = "n/a"


class NotApplicable(Exception):
    """Say a fixture cannot run on a Python engine (PHP objects, other templates)."""


@dataclass
class FixtureResult:
    """Hold one fixture's outcome and what it covers."""

    path: str
    outcome: str
    detail: str = ""


# -- PHP literals


class _LiteralParser:
    """Read PHP array/scalar literals: [..], array(..), 'x', "x", numbers, true/false/null, => keys."""

    _TOKEN = re.compile(
        r"""\s*(?:(?P<comment>//[^\n]*|\#[^\n]*|/\*.*?\*/)|(?P<number>-?(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))"""
        r"""|(?P<single>'(?:[^'\\]|\\.)*')|(?P<double>"(?:[^"\\]|\\.)*")|(?P<arrow>=>)|(?P<punct>[\[\](),;])"""
        r"""|(?P<name>[A-Za-z_\\][A-Za-z0-9_\\:]*))""",
        re.S,
    )

    def __init__(self, text: str, *, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = self._TOKEN.match(text, position)
            if match is None or match.end() == position:
                if text[position:].strip() == "":
                    break
                raise NotApplicable(f"PHP syntax not understood near {text[position : position + 30]!r}")
            position = match.end()
            kind = match.lastgroup
            if kind is None or kind == "comment":
                continue
            self.tokens.append((kind, match[kind]))
        self.position = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("eof", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.position += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if token[1] != value:
            raise NotApplicable(f"PHP: expected {value!r}, got {token[1]!r}")

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "number":
            if text.lower().startswith(("0x", "-0x")):
                return int(text, 16)
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "single":
            return re.sub(r"\\([\\'])", r"\1", text[1:-1])
        if kind == "double":
            body = text[1:-1]
            if "$" in body:
                raise NotApplicable("PHP string interpolation")
            escapes = {
                "n": "\n",
                "t": "\t",
                "r": "\r",
                "v": "\v",
                "f": "\f",
                "\\": "\\",
                '"': '"',
                "$": "$",
                "e": "\x1b",
            }
            return re.sub(
                r"\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)",
                lambda m: (
                    escapes.get(m[1])
                    or (chr(int(m[1][2:-1], 16)) if m[1].startswith("u{") else None)
                    or (chr(int(m[1][1:], 16)) if m[1][0] == "x" else None)
                    or (chr(int(m[1], 8)) if m[1][0] in "01234567" else "\\" + m[1])
                ),
                body,
            )
        if kind == "punct" and text == "[":
            return self.array("]")
        if kind == "name":
            lowered = text.lower()
            if lowered == "true":
                return True
            if lowered == "false":
                return False
            if lowered == "null":
                return None
            if lowered == "array" and self.peek()[1] == "(":
                self.take()
                return self.array(")")
            if text == "PHP_INT_MAX":
                return 2**63 - 1
            if text == "DATE_W3C":
                return "Y-m-d\\TH:i:sP"
            if text == "mktime" and self.peek()[1] == "(":
                return self.mktime()
            if text == "new":
                return self.new_object()
            raise NotApplicable(f"PHP {text} (an object, constant or function call)")
        raise NotApplicable(f"PHP value not understood: {text!r}")

    def arguments(self) -> list[Any]:
        self.expect("(")
        values = []
        while self.peek()[1] != ")":
            values.append(self.value())
            if self.peek()[1] == ",":
                self.take()
        self.take()
        return values

    def mktime(self) -> int:
        """Return PHP's mktime(hour, minute, second, month, day, year) in the default timezone."""
        hour, minute, second, month, day, year = self.arguments()
        moment = datetime(year, month, day, hour, minute, second, tzinfo=phpdate.zone(self.timezone))
        return int(moment.timestamp())

    def new_object(self) -> Any:
        """Return the DateTime and DateTimeZone objects of a fixture's data, as Python values."""
        _, name = self.take()
        name = name.lstrip("\\")
        if name == "DateTimeZone":
            [zone_name] = self.arguments()
            return phpdate.zone(zone_name)
        if name in ("ArrayObject", "ArrayIterator"):
            args = self.arguments()
            return args[0] if args else []
        if name in ("DateTime", "DateTimeImmutable"):
            args = self.arguments()
            zone = args[1] if len(args) > 1 else phpdate.zone(self.timezone)
            return phpdate.parse_date(args[0] if args else "now", default_zone=zone, now=datetime.now(UTC))
        raise NotApplicable(f"PHP object {name}")

    def array(self, closing: str) -> Any:
        result: dict[Any, Any] = {}
        while self.peek()[1] != closing:
            first = self.value()
            if self.peek()[0] == "arrow":
                self.take()
                result[php.php_key(first)] = self.value()
            else:
                result[php.next_index(result)] = first
            if self.peek()[1] == ",":
                self.take()
        self.take()
        return php.normalise(result)


def parse_php_literal(text: str) -> tuple[Any, str | None]:
    """Return the value of ``[date_default_timezone_set('Zone');] return <literal>;`` and that timezone."""
    timezone = None
    body = text.strip()
    zone = re.match(r"date_default_timezone_set\(\s*'([^']+)'\s*\)\s*;", body)
    if zone is not None:
        timezone = zone[1]
        body = body[zone.end() :].strip()
    if not body.startswith("return"):
        raise NotApplicable("data is PHP code, not a literal")
    parser = _LiteralParser(body[len("return") :], timezone=timezone or "UTC")
    value = parser.value()
    if parser.peek()[1] == ";":
        parser.take()
    if parser.peek()[0] != "eof":
        raise NotApplicable("data is PHP code, not a literal")
    return value, timezone


# -- fixtures


_SECTION = re.compile(r"^--([A-Z]+(?:\([^)]*\))?)--\s*$", re.M)


def _sections(text: str) -> list[tuple[str, str]]:
    parts = _SECTION.split(text)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


def _config(text: str) -> dict[str, Any]:
    value, _ = parse_php_literal(text)
    return dict(php.items(value)) if php.is_array(value) else {}


# The PHP a fixture's condition is judged for: 8.2, as Debian's php-cli (OpenConnector needs 8.1 or later).
_PHP_VERSION_ID = 80200
_VERSION_CONDITION = re.compile(r"\\?PHP_VERSION_ID\s*(>=|<|>|<=)\s*(\d+)")


def _condition_holds(condition: str) -> bool | None:
    """Return whether a fixture's PHP condition holds (a PHP version test, or xdebug's absence); None when
    it is some other PHP."""
    match = _VERSION_CONDITION.fullmatch(condition)
    if match is not None:
        wanted = int(match[2])
        return {">=": wanted <= _PHP_VERSION_ID, "<": wanted > _PHP_VERSION_ID, ">": wanted < _PHP_VERSION_ID,
                "<=": wanted >= _PHP_VERSION_ID}[match[1]]
    if condition.startswith("!extension_loaded('xdebug')"):
        return True  # no xdebug here
    return None


def run_fixture(text: str) -> tuple[str, str]:
    """Return a fixture's outcome (pass, fail, n/a) and, when it did not pass, why."""
    sections = _sections(text)
    names = [name for name, _ in sections]
    if any(name.startswith("TEMPLATE(") for name in names):
        return NOT_APPLICABLE, "needs other templates"
    condition = next((body.strip() for name, body in sections if name == "CONDITION"), None)
    if condition is not None:
        holds = _condition_holds(condition)
        if holds is None:
            return NOT_APPLICABLE, f"has a PHP condition this runner cannot read: {condition}"
        if not holds:
            return NOT_APPLICABLE, f"its condition is false for PHP {_PHP_VERSION_ID}: {condition}"
    template = next((body for name, body in sections if name == "TEMPLATE"), None)
    if template is None:
        return NOT_APPLICABLE, "no template"
    template = template[:-1] if template.endswith("\n") else template
    extension = _TEST_EXTENSION.search(template)
    if extension is not None:
        return NOT_APPLICABLE, f"uses {extension[0]!r} of Twig's PHP test extension"
    runs: list[tuple[str, dict[str, Any], str | None, str | None]] = []
    pending_data: str | None = None
    pending_config: dict[str, Any] = {}
    try:
        for name, body in sections:
            if name == "DATA":
                pending_data = body
                pending_config = {}
            elif name == "CONFIG":
                pending_config = _config(body)
            elif name == "EXPECT":
                runs.append((pending_data or "return []", pending_config, body, None))
            elif name == "EXCEPTION":
                runs.append((pending_data or "return []", pending_config, None, body))
    except NotApplicable as exc:
        return NOT_APPLICABLE, str(exc)
    if not runs:
        return NOT_APPLICABLE, "nothing expected"
    for data_text, config, expected, exception in runs:
        try:
            data, timezone = parse_php_literal(data_text)
        except NotApplicable as exc:
            return NOT_APPLICABLE, str(exc)
        environment = Environment(
            autoescape=config.get("autoescape", "html"),
            timezone=timezone or "UTC",
            strict_variables=config.get("strict_variables", True),
        )
        # Twig's IntegrationTestCase adds this global.
        environment.globals["global"] = "global"
        context = {str(k): v for k, v in php.items(data)} if php.is_array(data) else {}
        try:
            output = environment.from_string(template).render(context)
        except TwigError as exc:
            if exception is None:
                return FAIL, f"{type(exc).__name__}: {exc}"
            wanted = TwigSyntaxError if "SyntaxError" in exception else TwigRuntimeError
            if not isinstance(exc, wanted) and "Twig\\Error\\Error" not in exception:
                return FAIL, f"expected {exception.strip()}, got {type(exc).__name__}: {exc}"
            continue
        except Exception as exc:  # an engine bug: report it as a failure, not a crash of the run
            return FAIL, f"crash: {type(exc).__name__}: {exc}"
        if exception is not None:
            return FAIL, f"expected {exception.strip()}, got output {output[:80]!r}"
        if output.strip("\n ") != (expected or "").strip("\n "):
            return FAIL, f"output differs: got {output.strip()[:200]!r}, expected {(expected or '').strip()[:200]!r}"
    return PASS, ""


# Filters, functions and tests Twig's own test suite defines in PHP (tests/IntegrationTest.php).
_TEST_EXTENSION = re.compile(
    r"\b(?:\w+_foo_\w+_bar|\w+_path|anon_foo|escape_and_nl2br|escape_something|magic_call\w*|preserves_safety"
    r"|static_call_\w+|deprecated_function|safe_br|unsafe_br|test_\w+|multi word)\b|§"
)
# Fixtures that fail, each with the reason; a failure not listed here is a regression, and a listed one that
# passes must leave the list.
KNOWN_FAILURES: dict[str, str] = {
    "expressions/_self.test": "_self (the template's name) is not supported",
    "expressions/postfix.test": "macros ({% import %}) are not supported",
    "expressions/unary_macro_arguments.test": "macros ({% import %}) are not supported",
    "functions/date.test": "methods of objects (date().format('r')) are not supported",
    "functions/constant.test": "PHP constants (constant()) are not supported",
    "tests/constant.test": "PHP constants (is constant()) are not supported",
    "tests/defined_for_constants.test": "PHP constants (constant()) are not supported",
    "filters/map.test": "macros ({% macro %}) are not supported",
    "functions/dump.test": "dump() (Twig's debug extension) is not supported",
    "functions/dump_array.test": "dump() (Twig's debug extension) is not supported",
    "functions/enum/invalid_dynamic_enum.test": "PHP enums are not supported",
    "functions/enum/valid.test": "PHP enums are not supported",
    "functions/enum_cases/invalid_dynamic_enum.test": "PHP enums are not supported",
    "functions/enum_cases/valid.test": "PHP enums are not supported",
    "functions/include/ignore_missing.test": "include is not supported: a mapping template stands alone",
    "functions/include/missing.test": "include is not supported: a mapping template stands alone",
    "tests/defined_for_attribute.legacy.test": "attribute() on objects: only arrays are supported",
    "tests/defined_for_attribute.test": "dynamic attributes (a.(b)) are not supported",
    "tests/null_coalesce_block.test": "blocks are not supported",
}

_KINDS = {"filters": "filter", "functions": "function", "tests": "test", "operators": "operator",
          "expressions": "expression", "whitespace": "whitespace"}


def fixture_feature(path: str, *, environment: Environment | None = None) -> str:
    """Return the feature a fixture measures: "filter merge", "tag for", "test empty", "expression power"."""
    parts = path.split("/")
    if parts[0] == "tags":
        return f"tag {parts[1]}" if len(parts) > 2 else f"tag {parts[1].removesuffix('.test')}"
    kind = _KINDS.get(parts[0], parts[0])
    stem = parts[-1].removesuffix(".test").removesuffix(".legacy")
    if len(parts) > 2:
        stem = parts[1]
    environment = environment or Environment()
    names = {
        "filter": environment.filters, "function": environment.functions,
        "test": {name.replace(" ", "_").replace("same_as", "sameas"): None for name in environment.tests},
    }.get(kind)
    if names:
        matches = [name for name in names if stem == name or stem.startswith(name + "_")]
        if matches:
            stem = max(matches, key=len)
    return f"{kind} {stem}"


def conformance_table(results: list[FixtureResult]) -> str:
    """Return the Markdown table of pass shares per folder of fixtures, then per feature (not-applicable
    fixtures apart)."""
    environment = Environment()
    folders: dict[str, list[int]] = {}
    features: dict[str, list[int]] = {}
    for result in results:
        column = {PASS: 0, FAIL: 1, NOT_APPLICABLE: 2}[result.outcome]
        folders.setdefault(f"folder {result.path.split('/')[0]}/", [0, 0, 0])[column] += 1
        features.setdefault(fixture_feature(result.path, environment=environment), [0, 0, 0])[column] += 1
    lines = [
        "| Fixtures | Passed | Failed | Not applicable | Pass share |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, counts in [*sorted(folders.items()), *sorted(features.items())]:
        lines.append(_row(name, counts))
    totals = [sum(counts[column] for counts in folders.values()) for column in range(3)]
    lines.append(_row("**all**", totals))
    return "\n".join(lines) + "\n"


def _row(name: str, counts: list[int]) -> str:
    passed, failed, not_applicable = counts
    return f"| {name} | {passed} | {failed} | {not_applicable} | {_share(passed, failed)} |"


def _share(passed: int, failed: int) -> str:
    return "n/a" if passed + failed == 0 else f"{100 * passed // (passed + failed)}%"


def run_fixtures(root: Path) -> list[FixtureResult]:
    """Run every ``.test`` file under ``root``."""
    results = []
    for path in sorted(root.rglob("*.test")):
        outcome, detail = run_fixture(path.read_text(encoding="utf-8"))
        results.append(FixtureResult(path=path.relative_to(root).as_posix(), outcome=outcome, detail=detail))
    return results
