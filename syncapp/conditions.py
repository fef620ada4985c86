"""Evaluate and validate the JSON Logic ``conditions`` that filter a synchronization's source objects.

The engine is json-logic-qubit (import name ``json_logic``), with two changes made here, around the
library rather than inside it:

* ``reduce`` evaluates its third argument (the initial accumulator) as logic, as the JSON Logic
  specification and the public conformance suite require (see ``_reduce`` below);
* ``var`` (and ``missing``, ``missing_some``) read their paths as every dot path of this service is
  read (syncapp.dotpath): ``&#46;`` is a dot inside a key, as OpenConnector writes it
  (``values.attribute&#46;woo_categorie``), and a key that itself holds dots is found;
* operators that reach Python objects are refused, both by ``validate_conditions`` and at
  evaluation: the library's dot-notated "custom operation" call syntax (``{"datetime.datetime.now": []}``)
  and its ``method`` operator, which calls any attribute of any value and so lets a rule walk from a
  string to ``os.system``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import json_logic

from syncapp.dotpath import MISSING, get_path
from syncapp.errors import SyncError

__all__ = [
    "ConditionError",
    "conditions_compile",
    "evaluate_conditions",
    "evaluate_rule",
    "is_truthy",
    "validate_conditions",
]

# Operators the library knows but that rules from users must never use: ``method`` calls
# ``getattr(value, name)(*args)`` on any value, which is enough to reach arbitrary Python code.
REFUSED_OPERATORS: frozenset[str] = frozenset({"method"})


class ConditionError(SyncError, ValueError):
    """Report a JSON Logic rule that cannot be evaluated."""


def _reduce(data: Any, scoped_data: Any, scoped_logic: Any, initial: Any = None) -> Any:
    """Fold ``scoped_data`` with ``scoped_logic``, starting from ``initial`` evaluated as logic."""
    scoped_data = json_logic.jsonLogic(scoped_data, data)
    initial = json_logic.jsonLogic(initial, data)
    if not isinstance(scoped_data, list | tuple):
        return initial
    accumulator = initial
    for current in scoped_data:
        accumulator = json_logic.jsonLogic(scoped_logic, {"accumulator": accumulator, "current": current})
    return accumulator


def _install_reduce() -> None:
    """Register the corrected ``reduce`` in place of the library's own."""
    # json-logic-qubit 0.9.1 passes the third argument of ``reduce`` to the fold unevaluated, so
    # {"reduce": [{"var": "integers"}, ..., {"var": "start_with"}]} starts from the dict
    # {"var": "start_with"} instead of its value and fails (a case of the conformance suite).
    # ``add_operation`` cannot fix this: custom operations come after the scoped ones and receive
    # evaluated arguments without the data, so the scoped table itself is updated, once, at import.
    scoped = getattr(json_logic, "_scoped_operations", None)
    if not isinstance(scoped, dict) or "reduce" not in scoped:
        raise ImportError("json_logic has no scoped 'reduce' operation to replace; check its version")
    scoped["reduce"] = _reduce
    json_logic.operations["reduce"] = _reduce


_install_reduce()

_library_var = json_logic._var


def _var(data: Any, var_name: Any = None, default: Any = None) -> Any:
    """Return the value at a dot path of the data (syncapp.dotpath), else what the library finds, else default."""
    if var_name is None or var_name == "":
        return data
    if isinstance(var_name, str | int) and not isinstance(var_name, bool) and isinstance(data, dict | list):
        found = get_path(data, str(var_name))
        if found is not MISSING:
            return found
    # What dot paths do not read (a character of a text, a negative index) stays the library's.
    return _library_var(data, var_name, default)


def _install_var() -> None:
    """Register the dot-path ``var`` in place of the library's, for ``missing`` and ``missing_some`` too."""
    # OpenConnector hands its conditions the object with every dot in a key written `&#46;`, and its rules
    # say so; the library splits a path at every dot and finds no such key (every object filtered out).
    table = getattr(json_logic, "_data_operations", None)
    if not isinstance(table, dict) or "var" not in table:
        raise ImportError("json_logic has no 'var' data operation to replace; check its version")
    table["var"] = _var
    json_logic.operations["var"] = _var
    json_logic._var = _var  # `missing` looks the module's `_var` up when it runs


_install_var()

# Bounds of the values a rule may build: a rule is a filter, and one that grows a value without end
# ({"reduce": [[1, ...], {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "x"]} doubles a
# string forty times) must fail clearly, not exhaust the worker's memory.
MAX_RESULT_CHARS = 100_000
MAX_RESULT_ITEMS = 100_000
MAX_INTEGER_BITS = 1024


def _result_check(operator: str, value: Any) -> Any:
    """Return the value an operator built, or raise ConditionError when it is out of bounds."""
    if isinstance(value, str) and len(value) > MAX_RESULT_CHARS:
        raise ConditionError(f"operator {operator!r} built a text longer than {MAX_RESULT_CHARS:,} characters")
    if isinstance(value, list | tuple) and len(value) > MAX_RESULT_ITEMS:
        raise ConditionError(f"operator {operator!r} built a list longer than {MAX_RESULT_ITEMS:,} items")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConditionError(f"operator {operator!r} gave {value}: a number out of range")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INTEGER_BITS:
        raise ConditionError(f"operator {operator!r} gave a number out of range")
    return value


def _bounded(operator: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any) -> Any:
        return _result_check(operator, function(*args))

    bounded.bounded = True
    return bounded


def _install_bounds() -> None:
    """Check the result of every operator that builds values, in the library's own tables."""
    for name in ("_common_operations", "_unsupported_operations", "_scoped_operations"):
        table = getattr(json_logic, name, None)
        if not isinstance(table, dict):
            raise ImportError(f"json_logic has no {name} table to bound; check its version")
        for operator, function in list(table.items()):
            if not getattr(function, "bounded", False):
                table[operator] = _bounded(operator, function)


_install_bounds()


def _known_operator(operator: Any) -> bool:
    """Tell whether ``operator`` is one the library runs from its tables and that is allowed."""
    # Only names found in the tables are known: a dotted name that is not there is the library's
    # dot-notation call syntax, which walks attributes of registered Python objects.
    return (
        isinstance(operator, str) and operator in json_logic.operations and operator not in REFUSED_OPERATORS
    )


def _describe(operator: Any) -> str:
    """Quote an operator name for a message."""
    return json.dumps(operator, ensure_ascii=False, default=repr)


def _problems(rule: Any, *, path: str, check_shape: bool) -> list[str]:
    """List the refused or unknown operators in ``rule`` (and, if asked, dicts without one key)."""
    problems: list[str] = []
    # An explicit stack rather than recursion, so that a deeply nested rule cannot overflow it.
    stack: list[tuple[Any, str]] = [(rule, path)]
    while stack:
        node, location = stack.pop()
        children: list[tuple[Any, str]] = []
        if isinstance(node, list | tuple):
            children = [(item, f"{location}[{index}]") for index, item in enumerate(node)]
        elif isinstance(node, dict):
            if len(node) != 1:
                # The library treats such a dict as a literal value and does not look inside it.
                if check_shape:
                    keys = ", ".join(_describe(key) for key in node)
                    found = f"{len(node)} ({keys})" if node else "none"
                    problems.append(
                        f"{location}: a rule must have exactly one key (the operator), found {found}"
                    )
                continue
            operator, values = next(iter(node.items()))
            if operator in REFUSED_OPERATORS:
                problems.append(f"{location}: operator {_describe(operator)} is not allowed")
            elif not _known_operator(operator):
                problems.append(f"{location}: unknown operator {_describe(operator)}")
            operator_location = f"{location}.{operator}"
            if isinstance(values, list | tuple):
                children = [(item, f"{operator_location}[{index}]") for index, item in enumerate(values)]
            else:
                children = [(values, operator_location)]
        stack.extend(reversed(children))
    return problems


def validate_conditions(conditions: Any, *, path: str = "conditions") -> list[str]:
    """Return a message, with its location, for each unknown operator and malformed rule."""
    if _passes_everything(conditions):
        return []
    return _problems(conditions, path=path, check_shape=True)


def evaluate_rule(*, rule: Any, data: Any) -> Any:
    """Evaluate the JSON Logic ``rule`` on ``data``; raise ConditionError if it cannot be evaluated."""
    refused = _problems(rule, path="rule", check_shape=False)
    if refused:
        raise ConditionError("; ".join(refused))
    try:
        return json_logic.jsonLogic(rule, data)
    except ConditionError:
        raise
    except RecursionError:
        raise ConditionError("cannot evaluate rule: it nests too deep") from None
    except Exception as exc:  # The library raises whatever Python raises: TypeError, KeyError, ...
        raise ConditionError(f"cannot evaluate rule: {type(exc).__name__}: {exc}") from exc


def is_truthy(value: Any) -> bool:
    """Tell whether ``value`` is truthy the way json_logic decides it in ``if``, ``and``, ``!``, ..."""
    # json_logic's notion is Python's ``bool``: it matches JSON Logic for 0, "", "0", [], null and
    # false, but differs from JavaScript for NaN (truthy here) and {} (falsy here).
    return bool(json_logic._truthy(value))


def _passes_everything(conditions: Any) -> bool:
    """Tell whether ``conditions`` is empty, meaning every object passes."""
    return conditions is None or (isinstance(conditions, dict | list) and not conditions)


def conditions_normalize(conditions: Any) -> Any:
    """Return conditions as they are stored: empty ones (null, and [] as OpenConnector writes an empty object)
    as {}, so that the admin, the API and an import store one spelling of "no conditions"; a rule as it is
    (false, 0 and "" are rules that no object passes)."""
    return {} if _passes_everything(conditions) else conditions


def evaluate_conditions(*, conditions: Any, data: Any) -> bool:
    """Tell whether ``data`` passes ``conditions``; None, {} and [] let every object pass."""
    if _passes_everything(conditions):
        return True
    return is_truthy(evaluate_rule(rule=conditions, data=data))


def conditions_compile(conditions: Any) -> Callable[[Any], bool]:
    """Return a test of objects against ``conditions``, checked once rather than on every object.

    A rule with a refused or unknown operator gives a test that raises ConditionError for every
    object, as evaluate_conditions would.
    """
    if _passes_everything(conditions):
        return lambda data: True
    refused = _problems(conditions, path="rule", check_shape=False)
    message = "; ".join(refused)

    def passes(data: Any) -> bool:
        if refused:
            raise ConditionError(message)
        try:
            return bool(json_logic._truthy(json_logic.jsonLogic(conditions, data)))
        except ConditionError:
            raise
        except RecursionError:
            raise ConditionError("cannot evaluate rule: it nests too deep") from None
        except Exception as exc:  # The library raises whatever Python raises: TypeError, KeyError, ...
            raise ConditionError(f"cannot evaluate rule: {type(exc).__name__}: {exc}") from exc

    return passes
