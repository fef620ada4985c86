"""PHP's value semantics as Twig relies on them: arrays, truthiness, comparison, casts, printing."""

from __future__ import annotations

import math
import re
from typing import Any

from syncapp.twig.errors import TwigRuntimeError

__all__ = [
    "Markup",
    "compare",
    "is_array",
    "items",
    "loose_equals",
    "make_array",
    "php_key",
    "to_bool",
    "to_number",
    "to_string",
]


class Markup(str):
    """A string already safe for output (Twig's Markup): the escaper leaves it alone."""

    __slots__ = ()


def is_array(value: Any) -> bool:
    """Return whether a value is a PHP array (a list or a dict here)."""
    return isinstance(value, list | dict)


def items(value: Any) -> list[tuple[Any, Any]]:
    """Return the key/value pairs of a PHP array."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list | tuple):
        return list(enumerate(value))
    raise TypeError(f"{type_name(value)} is not an array")


_INT_KEY = re.compile(r"-?[1-9][0-9]*|0")


def php_key(key: Any) -> Any:
    """Return an array key as PHP stores it: "5" and 5.7 and True become ints, null becomes ""."""
    if isinstance(key, bool):
        return int(key)
    if isinstance(key, int):
        return key
    if isinstance(key, float):
        return int(key)
    if key is None:
        return ""
    if isinstance(key, str):
        if _INT_KEY.fullmatch(key) and -(2**63) <= int(key) < 2**63:
            return int(key)
        return key
    raise TwigRuntimeError(f"Illegal offset type {type_name(key)}.")


def make_array(pairs: list[tuple[Any, Any]] | Any) -> list[Any] | dict[Any, Any]:
    """Return a PHP array built from key/value pairs: a list when the keys are 0, 1, 2, ..."""
    result: dict[Any, Any] = {}
    for key, value in pairs:
        result[php_key(key)] = value
    return normalise(result)


def normalise(value: dict[Any, Any]) -> list[Any] | dict[Any, Any]:
    """Return a dict whose keys are 0..n-1 in order as a list, any other dict unchanged."""
    if all(key == index and type(key) is int for index, key in enumerate(value)):
        return list(value.values())
    return value


def next_index(array: dict[Any, Any]) -> int:
    """Return the key PHP gives the next appended element."""
    ints = [key for key in array if type(key) is int]
    return max(ints) + 1 if ints and max(ints) >= 0 else 0


def type_name(value: Any) -> str:
    """Name a value's type as PHP's get_debug_type does."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if is_array(value):
        return "array"
    return type(value).__name__


def to_bool(value: Any) -> bool:
    """Return PHP's truthiness: "", "0", 0, 0.0, null and [] are false."""
    if isinstance(value, str):
        return value not in ("", "0")
    if isinstance(value, list | dict):
        return len(value) > 0
    if value is None:
        return False
    if callable(value):
        return True
    return bool(value)


def format_float(value: float, precision: int = 14) -> str:
    """Return a float as PHP's echo prints it: ``precision`` significant digits, "1.0E+25" beyond them."""
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    mantissa, _, exponent_text = f"{value:.{precision - 1}e}".partition("e")
    exponent = int(exponent_text)
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    if exponent < -4 or exponent >= precision:
        fraction = digits[1:] or "0"
        return f"{sign}{digits[0]}.{fraction}E{'-' if exponent < 0 else '+'}{abs(exponent)}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, fraction = digits[: exponent + 1], digits[exponent + 1 :]
    whole = whole.ljust(exponent + 1, "0")
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def to_string(value: Any) -> str:
    """Return a value as PHP prints it: true "1", false and null "", arrays "Array"."""
    if isinstance(value, str):
        return value
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if is_array(value):
        return "Array"
    if callable(value):
        raise TwigRuntimeError("Object of class Closure could not be converted to string.")
    return str(value)


_NUMERIC = re.compile(r"[ \t\n\r\v\f]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\v\f]*")
_LEADING_NUMERIC = re.compile(r"[ \t\n\r\v\f]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def is_numeric(value: Any) -> bool:
    """Return PHP's is_numeric."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _NUMERIC.fullmatch(value) is not None


def _number_from_text(text: str) -> int | float:
    text = text.strip(" \t\n\r\v\f")
    if re.fullmatch(r"[+-]?[0-9]+", text):
        number = int(text)
        return number if -(2**63) <= number < 2**63 else float(number)
    return float(text)


def leading_number(text: str) -> int | float | None:
    """Return the number a string is or starts with (PHP's numeric and leading-numeric strings), else None."""
    match = _LEADING_NUMERIC.match(text)
    return None if match is None else _number_from_text(match[0])


def to_number(value: Any, *, strict: bool = False) -> int | float:
    """Return a value as a PHP number: numeric strings by value, leading-numeric strings by their prefix.

    ``strict`` refuses a non-numeric string as PHP 8's arithmetic does with arrays.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if value is None:
        return 0
    if isinstance(value, str):
        if _NUMERIC.fullmatch(value):
            return _number_from_text(value)
        match = _LEADING_NUMERIC.match(value)
        if match is not None:
            return _number_from_text(match[0])
        if strict:
            raise TwigRuntimeError(f'Unsupported operand types: a non-numeric value "{value}".')
        return 0
    if is_array(value):
        raise TwigRuntimeError("Unsupported operand types: array.")
    raise TwigRuntimeError(f"Unsupported operand types: {type_name(value)}.")


def to_float(value: Any) -> float:
    """Return PHP's (float) cast: an array is 1.0 when it has elements, else 0.0."""
    if is_array(value):
        return 1.0 if value else 0.0
    return float(to_number(value))


def text_argument(value: Any, *, what: str) -> str:
    """Return a value a PHP string parameter takes (scalars as text), refusing an array as PHP does."""
    if is_array(value):
        raise TwigRuntimeError(f"{what}: Argument #1 ($string) must be of type string, array given.")
    return to_string(value)


def to_int(value: Any) -> int:
    """Return PHP's (int) cast."""
    number = to_number(value) if not is_array(value) else (1 if value else 0)
    if isinstance(number, float):
        if math.isnan(number) or math.isinf(number):
            return 0
        return int(number)
    return number


def loose_equals(left: Any, right: Any) -> bool:
    """Return PHP 8's ``==``."""
    return compare(left, right) == 0


def _compare_scalars(left: Any, right: Any) -> int:
    return (left > right) - (left < right)


def compare(left: Any, right: Any) -> int:
    """Return PHP 8's ``<=>`` of two values (-1, 0, 1); 2 when uncomparable (arrays of different keys)."""
    if left is None and right is None:
        return 0
    if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        if isinstance(left, str) and right is None:
            return _compare_scalars(left, "")
        if isinstance(right, str) and left is None:
            return _compare_scalars("", right)
        if is_array(left) and right is None:
            return 1 if left else 0
        if is_array(right) and left is None:
            return -1 if right else 0
        return _compare_scalars(to_bool(left), to_bool(right))
    if isinstance(left, str) and isinstance(right, str):
        if is_numeric(left) and is_numeric(right):
            return _compare_scalars(_number_from_text(left), _number_from_text(right))
        return _compare_scalars(left, right)
    if isinstance(left, int | float) and isinstance(right, int | float):
        return _compare_scalars(left, right)
    if isinstance(left, int | float) and isinstance(right, str):
        if is_numeric(right):
            return _compare_scalars(left, _number_from_text(right))
        return _compare_scalars(to_string(left), right)
    if isinstance(left, str) and isinstance(right, int | float):
        if is_numeric(left):
            return _compare_scalars(_number_from_text(left), right)
        return _compare_scalars(left, to_string(right))
    if is_array(left) and is_array(right):
        left_items, right_items = dict(items(left)), dict(items(right))
        if len(left_items) != len(right_items):
            return _compare_scalars(len(left_items), len(right_items))
        for key, value in left_items.items():
            if key not in right_items:
                return 2
            result = compare(value, right_items[key])
            if result != 0:
                return result
        return 0
    if is_array(left):
        return 1
    if is_array(right):
        return -1
    return 0 if left is right else 2


def strict_equals(left: Any, right: Any) -> bool:
    """Return PHP's ``===``."""
    if type(left) is not type(right):
        if is_array(left) and is_array(right):
            return items(left) == items(right) and all(
                strict_equals(a, b) for (_, a), (_, b) in zip(items(left), items(right), strict=True)
            )
        return False
    if is_array(left):
        left_items, right_items = items(left), items(right)
        return len(left_items) == len(right_items) and all(
            ka == kb and strict_equals(a, b) for (ka, a), (kb, b) in zip(left_items, right_items, strict=True)
        )
    return left == right if left is not right else True
