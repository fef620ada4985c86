"""Twig's core filters, functions, tests and operators, with PHP's semantics."""

from __future__ import annotations

import base64
import binascii
import functools
import html
import json
import math
import random
import re
import re._parser as _regex_parser
import unicodedata
import urllib.parse
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from syncapp.twig import php, phpdate
from syncapp.twig.errors import TwigRuntimeError

# -- operators


def binary(render: Any, operator: str, left: Any, right: Any) -> Any:  # noqa: C901, PLR0911, PLR0912
    """Return ``left operator right``."""
    if operator == "~":
        return render.check_size(php.to_string(left) + php.to_string(right))
    if operator in ("==", "!="):
        equal = php.loose_equals(left, right)
        return equal if operator == "==" else not equal
    if operator in ("===", "!=="):
        same = php.strict_equals(left, right)
        return same if operator == "===" else not same
    if operator in ("<", ">", "<=", ">=", "<=>"):
        result = php.compare(left, right)
        if operator == "<=>":
            return 1 if result == 2 else result
        if result == 2:
            return False
        return {"<": result < 0, ">": result > 0, "<=": result <= 0, ">=": result >= 0}[operator]
    if operator in ("+", "-", "*", "/", "//", "%", "**"):
        return arithmetic(render, operator, left, right)
    if operator == "in":
        return contains(right, left)
    if operator == "not in":
        return not contains(right, left)
    if operator == "..":
        return range_function(render, left, right)
    if operator == "matches":
        return preg_match(right, php.to_string(left))
    if operator == "starts with":
        return isinstance(left, str) and isinstance(right, str) and left.startswith(right)
    if operator == "ends with":
        return isinstance(left, str) and isinstance(right, str) and left.endswith(right)
    if operator in ("b-and", "b-or", "b-xor"):
        if isinstance(left, str) and isinstance(right, str):
            return _string_bitwise(operator, left, right)
        symbol = {"b-and": "&", "b-or": "|", "b-xor": "^"}[operator]
        for value in (left, right):
            # An array, or text that does not start with a number, is a TypeError in PHP 8.
            if php.is_array(value) or isinstance(value, str) and php.leading_number(value) is None:
                raise TwigRuntimeError(
                    f"Unsupported operand types: {php.type_name(left)} {symbol} {php.type_name(right)}."
                )
        a, b = php.to_int(left), php.to_int(right)
        return {"b-and": a & b, "b-or": a | b, "b-xor": a ^ b}[operator]
    if operator == "xor":
        return php.to_bool(left) != php.to_bool(right)
    if operator in ("has some", "has every"):
        # PHP's foreach over a non-array runs no iteration: "has some" is false, "has every" true.
        pairs = php.items(left) if php.is_array(left) else []
        check = any if operator == "has some" else all
        return check(php.to_bool(render.call(right, value, key)) for key, value in pairs)
    raise TwigRuntimeError(f'Unknown operator "{operator}".')


def _string_bitwise(operator: str, left: str, right: str) -> str:
    """Return PHP's &, | or ^ of two strings: byte by byte (| to the longer one's length, & and ^ the shorter)."""
    a, b = left.encode("utf-8"), right.encode("utf-8")
    if operator == "b-or":
        a, b = a.ljust(len(b), b"\0"), b.ljust(len(a), b"\0")
        data = bytes(x | y for x, y in zip(a, b, strict=True))
    else:
        combine = (lambda x, y: x & y) if operator == "b-and" else (lambda x, y: x ^ y)
        data = bytes(combine(x, y) for x, y in zip(a, b, strict=False))
    return data.decode("utf-8", "replace")


def arithmetic(render: Any, operator: str, left: Any, right: Any) -> Any:
    """Return a PHP arithmetic result."""
    if operator == "+" and php.is_array(left) and php.is_array(right):
        result = dict(php.items(left))
        for key, value in php.items(right):
            result.setdefault(key, value)
        return php.normalise(result)
    a = php.to_number(left, strict=True)
    b = php.to_number(right, strict=True)
    if operator == "+":
        return _overflow(a + b)
    if operator == "-":
        return _overflow(a - b)
    if operator == "*":
        return _overflow(a * b)
    if operator == "/":
        if b == 0:
            raise TwigRuntimeError("Division by zero.")
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return a // b
        return a / b
    if operator == "//":
        if b == 0:
            raise TwigRuntimeError("Division by zero.")
        quotient = a / b
        # As PHP's (int) floor(): infinity and NaN give 0.
        return int(math.floor(quotient)) if math.isfinite(quotient) else 0
    if operator == "%":
        a, b = php.to_int(a), php.to_int(b)
        if b == 0:
            raise TwigRuntimeError("Modulo by zero.")
        return int(math.fmod(a, b))
    return _power(a, b)


def _power(a: int | float, b: int | float) -> int | float:
    """Return PHP's ``a ** b``: an int while it fits in 64 bits, else a float (INF, NAN as PHP gives them)."""
    small = isinstance(a, int) and isinstance(b, int) and b >= 0 and (abs(a) <= 1 or b * abs(a).bit_length() <= 64)
    if small:
        return _overflow(a**b)
    try:
        result = math.pow(float(a), float(b))
    except OverflowError:
        negative = a < 0 and float(b).is_integer() and int(b) % 2 == 1
        return -math.inf if negative else math.inf
    except ValueError:
        # A negative base with a fractional exponent; or 0 to a negative power.
        return math.inf if a == 0 else math.nan
    return result


def _overflow(value: int | float) -> int | float:
    """Return an int beyond PHP's 64 bits as a float, as PHP does."""
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return float(value)
    return value


def contains(haystack: Any, needle: Any) -> bool:
    """Return Twig's ``in``: an array's value (loosely equal), or a substring."""
    if php.is_array(haystack):
        return any(_in_equals(needle, value) for _, value in php.items(haystack))
    if isinstance(haystack, str):
        if isinstance(needle, str | int | float) and not isinstance(needle, bool):
            text = php.to_string(needle)
            return text == "" or text in haystack
        return False
    return False


def _in_equals(needle: Any, value: Any) -> bool:
    return php.loose_equals(needle, value)


_PCRE_FLAGS = {"i": re.I, "m": re.M, "s": re.S, "x": re.X, "u": 0, "D": 0, "U": 0}


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Return a PCRE pattern (``/.../flags``) compiled for Python."""
    if len(pattern) < 2:
        raise TwigRuntimeError(f'Invalid regular expression "{pattern}".')
    delimiter = pattern[0]
    closing = {"(": ")", "[": "]", "{": "}", "<": ">"}.get(delimiter, delimiter)
    end = pattern.rfind(closing)
    if delimiter.isalnum() or delimiter == "\\" or end <= 0:
        raise TwigRuntimeError(f'Invalid regular expression "{pattern}".')
    body, flags_text = pattern[1:end], pattern[end + 1 :]
    flags = 0
    for flag in flags_text:
        if flag not in _PCRE_FLAGS:
            raise TwigRuntimeError(f'Unknown modifier "{flag}" in regular expression "{pattern}".')
        flags |= _PCRE_FLAGS[flag]
    try:
        compiled = re.compile(body, flags)
    except re.error as exc:
        raise TwigRuntimeError(f'Invalid regular expression "{pattern}": {exc}.') from exc
    if _nested_repeat(_regex_parser.parse(body, flags)):
        # Python's re cannot be stopped mid-match: a quantifier inside a quantifier ("(a+)+") can take
        # exponential time, so such patterns are refused rather than run unbounded.
        raise TwigRuntimeError(f'Regular expression "{pattern}" repeats a repetition; it could run for ever.')
    return compiled


_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _nested_repeat(items: Any, inside_repeat: bool = False) -> bool:
    """Return whether a parsed pattern has a repetition (or a back reference) inside a repetition."""
    for opcode, argument in items:
        name = str(opcode)
        if name in _REPEATS:
            low_high_body = argument
            body = low_high_body[2]
            if inside_repeat or _nested_repeat(body, True):
                return True
            continue
        if inside_repeat and name in ("GROUPREF", "GROUPREF_EXISTS"):
            return True
        for value in argument if isinstance(argument, list | tuple) else ():
            if isinstance(value, _regex_parser.SubPattern) and _nested_repeat(value, inside_repeat):
                return True
            if isinstance(value, list | tuple):
                for part in value:
                    if isinstance(part, _regex_parser.SubPattern) and _nested_repeat(part, inside_repeat):
                        return True
    return False


def preg_match(pattern: Any, subject: str) -> bool:
    return compile_regex(php.to_string(pattern)).search(subject) is not None


# -- tests


def is_empty(value: Any) -> bool:
    """Return Twig's ``empty``: "", false, null and [] (0 and "0" are not empty)."""
    return (
        value == ""
        and isinstance(value, str)
        or value is False
        or value is None
        or (php.is_array(value) and len(value) == 0)
    )


def _int_operand(value: Any) -> int:
    """Return an operand of PHP's %: an int (arrays are refused, as PHP does)."""
    if php.is_array(value):
        raise TwigRuntimeError("Unsupported operand types: array % int.")
    php.to_number(value, strict=True)
    return php.to_int(value)


def _test_divisible(value: Any, divisor: Any) -> bool:
    # Twig compiles it to 0 == $a % $b: PHP's % works on ints.
    number, by = _int_operand(value), _int_operand(divisor)
    if by == 0:
        raise TwigRuntimeError("Modulo by zero.")
    return int(math.fmod(number, by)) == 0


TESTS: dict[str, Any] = {
    "empty": is_empty,
    "null": lambda value: value is None,
    "none": lambda value: value is None,
    "even": lambda value: _int_operand(value) % 2 == 0,
    "odd": lambda value: _int_operand(value) % 2 == 1,
    "iterable": php.is_array,
    "sequence": lambda value: isinstance(value, list) or isinstance(value, dict) and not value,
    "mapping": lambda value: isinstance(value, dict) and bool(value),
    "same as": php.strict_equals,
    "divisible by": _test_divisible,
    "defined": lambda value: True,  # evaluated by the renderer on the expression itself
}


# -- escaping


def escape(text: str, strategy: str = "html") -> str:
    """Return text escaped for an HTML, JavaScript, URL or attribute context as Twig's escape filter does."""
    if strategy == "html":
        return html_escape(text)
    if strategy == "url":
        return urllib.parse.quote(text, safe="-_.~")
    if strategy == "js":
        return re.sub(r"[^a-zA-Z0-9,._]", _js_escape, text)
    if strategy == "html_attr":
        return re.sub(r"[^a-zA-Z0-9,.\-_]", _attr_escape, text)
    if strategy == "css":
        return re.sub(r"[^a-zA-Z0-9]", lambda m: "\\" + format(ord(m[0]), "X") + " ", text)
    raise TwigRuntimeError(f'Invalid escaping strategy "{strategy}" (valid ones: html, js, url, css, html_attr).')


def html_escape(text: str) -> str:
    from syncapp.twig.engine import escape_html

    return escape_html(text)


def _js_escape(match: re.Match[str]) -> str:
    char = match[0]
    short = {"\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in short:
        return short[char]
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def _attr_escape(match: re.Match[str]) -> str:
    char = match[0]
    code = ord(char)
    if (code <= 0x1F and char not in "\t\n\r") or 0x7F <= code <= 0x9F:
        return "&#xFFFD;"
    named = {34: "&quot;", 38: "&amp;", 60: "&lt;", 62: "&gt;"}
    if code in named:
        return named[code]
    return f"&#x{code:02X};" if code < 256 else f"&#x{code:04X};"


def _escape_filter(
    render: Any, value: Any, strategy: Any = "html", charset: Any = None, autoescape: Any = False
) -> Any:
    # Twig leaves Markup alone only when escaping automatically; an explicit |e escapes it again.
    if autoescape and isinstance(value, php.Markup):
        return value
    if not isinstance(value, str):
        escape("", php.to_string(strategy))  # an unknown strategy is refused all the same
        return value  # as Twig: null, booleans, numbers and arrays are returned as they are
    return php.Markup(escape(value, php.to_string(strategy)))


# -- filters


def _require_array(name: str, value: Any) -> None:
    if not php.is_array(value):
        raise TwigRuntimeError(f'The "{name}" filter expects a sequence or a mapping, got "{php.type_name(value)}".')


def _abs(render: Any, value: Any) -> Any:
    if php.is_array(value) or isinstance(value, str) and not php.is_numeric(value):
        raise TwigRuntimeError(f"abs(): Argument #1 ($num) must be of type int|float, {php.type_name(value)} given.")
    return abs(php.to_number(value))


def _batch(render: Any, value: Any, size: Any, fill: Any = None, preserve_keys: Any = True) -> Any:
    _require_array("batch", value)
    pairs = php.items(value)
    size = int(math.ceil(php.to_number(size)))
    if size <= 0:
        raise TwigRuntimeError("The batch size must be greater than 0.")
    chunks = []
    for start in range(0, len(pairs), size):
        chunk = pairs[start : start + size]
        chunks.append(php.make_array(chunk) if preserve_keys else [v for _, v in chunk])
    if fill is not None and chunks:
        last = chunks[-1]
        missing = size - len(last)
        if missing > 0:
            pairs_last = php.items(last)
            next_key = max([k for k, _ in pairs_last if isinstance(k, int)], default=-1) + 1
            pairs_last += [(next_key + i, fill) for i in range(missing)]
            chunks[-1] = php.make_array(pairs_last)
    return chunks


def _capitalize(render: Any, value: Any) -> str:
    text = php.text_argument(value, what="capitalize")
    return text[:1].upper() + text[1:].lower()


def _column(render: Any, value: Any, name: Any, index: Any = None) -> Any:
    _require_array("column", value)
    pairs = []
    for _, row in php.items(value):
        if not php.is_array(row):
            continue
        row_items = dict(php.items(row))
        key = php.php_key(name)
        if key not in row_items:
            continue
        if index is not None and php.php_key(index) in row_items:
            pairs.append((row_items[php.php_key(index)], row_items[key]))
        else:
            pairs.append((None, row_items[key]))
    result: dict[Any, Any] = {}
    for key, item in pairs:
        result[php.next_index(result) if key is None else php.php_key(key)] = item
    return php.normalise(result)


def clock_now() -> datetime:
    """Return the moment `'now'` names (the one place templates read the clock)."""
    return datetime.now(UTC)


def date_value(render: Any, value: Any, timezone: Any = None) -> datetime:
    """Return the moment a value names, as Twig's date converter does: in ``timezone`` (the template's
    timezone when null; the value's own when false)."""
    default = phpdate.zone(render.env.timezone)
    if timezone is False:
        zone = None
    elif isinstance(timezone, tzinfo):
        zone = timezone
    else:
        zone = default if timezone is None else phpdate.zone(php.to_string(timezone))
    now = clock_now()
    if isinstance(value, datetime):
        moment = value
    elif value is None or value == "now":
        return now.astimezone(zone or default)
    else:
        text = php.to_string(value)
        if re.fullmatch(r"-?\d+", text):
            moment = datetime.fromtimestamp(int(text), UTC).replace(tzinfo=phpdate.zone("+00:00"))
        else:
            moment = phpdate.parse_date(text, default_zone=default, now=now)
    return moment if zone is None else moment.astimezone(zone)


def _date(render: Any, value: Any, format: Any = None, timezone: Any = None) -> str:  # noqa: A002
    moment = date_value(render, value, timezone)
    return phpdate.format_date(moment, "F j, Y H:i" if format is None else php.to_string(format))


def _date_modify(render: Any, value: Any, modifier: Any) -> datetime:
    moment = date_value(render, value)
    return phpdate.parse_date(php.to_string(modifier), default_zone=moment.tzinfo or UTC, now=moment)


def _default(render: Any, value: Any, default: Any = "") -> Any:
    # Evaluated by the renderer (it needs to know whether the value is defined); kept for its signature.
    return default if is_empty(value) else value


def _first(render: Any, value: Any) -> Any:
    if php.is_array(value):
        pairs = php.items(value)
        return pairs[0][1] if pairs else False  # PHP's current() of an empty array
    return php.to_string(value)[:1]


def _last(render: Any, value: Any) -> Any:
    if php.is_array(value):
        pairs = php.items(value)
        return pairs[-1][1] if pairs else False  # PHP's current() of an empty array
    return php.to_string(value)[-1:]


def _sprintf(fmt: str, args: list[Any], *, limit: int = 1_000_000) -> str:
    """Return PHP's sprintf for the common conversions (%s %d %f %F %x %X %o %b %e %E %c %u %%, argnum$, padding)."""
    spec = re.compile(r"%(?:(\d+)\$)?([-+ 0]|'.)*(\d+)?(?:\.(\d+))?(.?)", re.S)
    position = 0
    out: list[str] = []
    last = 0
    for match in spec.finditer(fmt):
        out.append(fmt[last : match.start()])
        last = match.end()
        conversion = match[5]
        if not conversion:
            raise TwigRuntimeError("Missing format specifier at end of string.")
        if conversion not in "bcdeEfFgGosuxX%":
            raise TwigRuntimeError(f'Unknown format specifier "{conversion}".')
        if conversion == "%":
            out.append("%")
            continue
        flags_text = fmt[
            match.start() + 1 : match.start(3) if match[3] else (match.start(4) - 1 if match[4] else match.start(5))
        ]
        if match[1]:
            flags_text = flags_text[len(match[1]) + 1 :]
            index = int(match[1]) - 1
        else:
            index = position
            position += 1
        if index >= len(args):
            raise TwigRuntimeError(f"{len(args) + 1} arguments are required, {len(args)} given.")
        value = args[index]
        left = "-" in flags_text
        plus = "+" in flags_text
        pad = " "
        custom = re.search(r"'(.)", flags_text)
        if custom:
            pad = custom[1]
        elif "0" in flags_text.replace("'0", ""):
            pad = "0"
        width = int(match[3]) if match[3] and len(match[3]) <= 8 else 0 if not match[3] else limit + 1
        precision = None if match[4] is None else int(match[4]) if len(match[4]) <= 8 else limit + 1
        if width > limit or (precision or 0) > limit:
            raise _limit(f"a format width of {max(width, precision or 0)} exceeds {limit}")
        if conversion == "s":
            text = php.to_string(value)
            if precision is not None:
                text = text[:precision]
        elif conversion in "du":
            number = php.to_int(value)
            if conversion == "u" and number < 0:
                number += 2**64
            text = str(number)
            if plus and number >= 0:
                text = "+" + text
        elif conversion in "fF":
            number = float(php.to_number(value))
            text = f"{number:.{6 if precision is None else precision}f}"
            if plus and number >= 0:
                text = "+" + text
        elif conversion in "eE":
            number = float(php.to_number(value))
            text = f"{number:.{6 if precision is None else precision}e}"
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}e{int(exponent):+d}"
            text = text.upper() if conversion == "E" else text
        elif conversion in "gG":
            number = float(php.to_number(value))
            text = f"{number:.{6 if precision is None else precision}{conversion}}"
        elif conversion == "x":
            text = format(php.to_int(value) & (2**64 - 1), "x")
        elif conversion == "X":
            text = format(php.to_int(value) & (2**64 - 1), "X")
        elif conversion == "o":
            text = format(php.to_int(value) & (2**64 - 1), "o")
        elif conversion == "b":
            text = format(php.to_int(value) & (2**64 - 1), "b")
        else:  # c
            text = chr(php.to_int(value) % 256)
        if len(text) < width:
            if left:
                text = text.ljust(width, " " if pad == "0" else pad)
            elif pad == "0" and text[:1] in "+-" and conversion not in "s":
                text = text[0] + text[1:].rjust(width - 1, "0")
            else:
                text = text.rjust(width, pad)
        out.append(text)
    out.append(fmt[last:])
    return "".join(out)


def _format(render: Any, value: Any, *args: Any) -> str:
    fmt = php.text_argument(value, what="format")
    return render.check_size(_sprintf(fmt, list(args), limit=render.limits.max_size))


def _limit(message: str) -> Exception:
    from syncapp.twig.engine import LimitError

    return LimitError(message)


def _join(render: Any, value: Any, glue: Any = "", and_: Any = None) -> str:
    if not php.is_array(value):
        # As PHP's (array) cast: null is empty, a scalar a list of itself.
        value = [] if value is None else [value]
    values = [php.to_string(v) for _, v in php.items(value)]
    glue = php.to_string(glue)
    size = sum(map(len, values)) + len(glue) * len(values) + len(php.to_string(and_))
    if size > render.limits.max_size:
        raise _limit(f"join would produce more than {render.limits.max_size} characters")
    if and_ is None or len(values) < 2:
        return render.check_size(glue.join(values))
    return render.check_size(glue.join(values[:-1]) + php.to_string(and_) + values[-1])


def json_encode_value(value: Any, flags: int = 0, *, limit: int | None = None) -> str:
    """Return PHP's json_encode of a value (escaped slashes and unicode unless the flags say otherwise)."""
    pretty = bool(flags & 128)
    unescaped_slashes = bool(flags & 64)
    unescaped_unicode = bool(flags & 256)
    force_object = bool(flags & 16)
    if limit is not None:
        _check_json_size(value, limit, [0])
    text = _json(value, pretty=pretty, level=0, force_object=force_object)
    if not unescaped_slashes:
        text = text.replace("/", "\\/")
    if unescaped_unicode:
        text = re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m[1], 16)) if int(m[1], 16) >= 0x80 else m[0], text)
        text = re.sub(
            r"([\ud800-\udbff])([\udc00-\udfff])",
            lambda m: (m[1] + m[2]).encode("utf-16", "surrogatepass").decode("utf-16"),
            text,
        )
    return text


def _check_json_size(value: Any, limit: int, size: list[int]) -> None:
    """Refuse a value whose JSON would exceed ``limit`` characters, before writing it (escapes not counted)."""
    if isinstance(value, str):
        size[0] += len(value) + 2
    elif php.is_array(value):
        size[0] += 2
        for key, item in php.items(value):
            size[0] += len(str(key)) + 4
            _check_json_size(item, limit, size)
            if size[0] > limit:
                break
    else:
        size[0] += 8
    if size[0] > limit:
        raise _limit(f"json_encode would produce more than {limit} characters")


def _json(value: Any, *, pretty: bool, level: int, force_object: bool) -> str:
    if value is None or isinstance(value, bool | int):
        return json.dumps(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise TwigRuntimeError("Inf and NaN cannot be JSON encoded.")
        return php_json_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if php.is_array(value):
        pairs = php.items(value)
        # A PHP array is a JSON list when its keys are 0, 1, 2, ... ("0" from JSON input is the key 0 in PHP).
        sequential = all(php.php_key(key) == index for index, (key, _) in enumerate(pairs))
        as_list = sequential and not force_object
        if not pairs:
            return "{}" if force_object else "[]"
        indent = "    " * (level + 1)
        if as_list:
            parts = [_json(v, pretty=pretty, level=level + 1, force_object=force_object) for _, v in pairs]
        else:
            separator = ": " if pretty else ":"
            parts = [
                json.dumps(str(k)) + separator + _json(v, pretty=pretty, level=level + 1, force_object=force_object)
                for k, v in pairs
            ]
        open_, close = ("[", "]") if as_list else ("{", "}")
        if pretty:
            return open_ + "\n" + ",\n".join(indent + p for p in parts) + "\n" + "    " * level + close
        return open_ + ",".join(parts) + close
    raise TwigRuntimeError(f"Cannot JSON encode {php.type_name(value)}.")


def php_json_float(value: float) -> str:
    """Return a float as PHP's json_encode writes it (serialize_precision -1: the shortest digits that read
    back, in scientific notation below 1e-4 and from 1e17: "1.0e+20")."""
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    # The shortest round-trip digits, and the decimal exponent of the first one.
    mantissa, _, exponent_text = format(value, ".17e").partition("e")
    for precision in range(17):
        candidate = format(value, f".{precision}e")
        if float(candidate) == value:
            mantissa, _, exponent_text = candidate.partition("e")
            break
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exponent = int(exponent_text)
    sign = "-" if value < 0 else ""
    if -4 <= exponent < 17:
        if exponent < 0:
            return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
        whole, fraction = digits[: exponent + 1].ljust(exponent + 1, "0"), digits[exponent + 1 :]
        return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}e{'-' if exponent < 0 else '+'}{abs(exponent)}"


def _json_encode(render: Any, value: Any, options: Any = 0) -> str:
    return render.check_size(json_encode_value(value, php.to_int(options), limit=render.limits.max_size))


def _keys(render: Any, value: Any) -> Any:
    if not php.is_array(value):
        return []
    return [key for key, _ in php.items(value)]


def _length(render: Any, value: Any) -> int:
    if php.is_array(value):
        return len(value)
    if value is None:
        return 0
    return len(php.to_string(value))


def _lower(render: Any, value: Any) -> str:
    return php.text_argument(value, what="lower").lower()


def _upper(render: Any, value: Any) -> str:
    return php.text_argument(value, what="upper").upper()


def _title(render: Any, value: Any) -> str:
    # PHP's mb_convert_case(MB_CASE_TITLE): a cased letter after an uncased character starts a word (so
    # "x1y" is "X1Y"); case-ignorable characters (' . : ^ ` and marks) do not end one ("o'brien", "a.b").
    text = php.text_argument(value, what="title")
    out = []
    in_word = False
    for char in text:
        if char.lower() != char.upper() or unicodedata.category(char) in ("Lu", "Ll", "Lt"):
            out.append(char.lower() if in_word else char.title())
            in_word = True
        else:
            out.append(char)
            in_word = in_word and (char in "'.:^`\u00b7\u2019" or unicodedata.category(char) in _CASE_IGNORABLE)
    return "".join(out)


# Unicode's case-ignorable categories: marks, format characters, modifier letters and symbols.
_CASE_IGNORABLE = frozenset({"Mn", "Me", "Cf", "Lm", "Sk"})


def _merge(render: Any, value: Any, *others: Any) -> Any:
    if not php.is_array(value):
        raise TwigRuntimeError(f'The "merge" filter expects a sequence or a mapping, got "{php.type_name(value)}".')
    result: dict[Any, Any] = dict(php.items(value))
    result = {}
    for key, item in php.items(value):
        if isinstance(key, int):
            result[php.next_index(result)] = item
        else:
            result[key] = item
    for other in others:
        if not php.is_array(other):
            raise TwigRuntimeError(f'The "merge" filter expects a sequence or a mapping, got "{php.type_name(other)}".')
        for key, item in php.items(other):
            if isinstance(key, int):
                result[php.next_index(result)] = item
            else:
                result[key] = item
    return php.normalise(result)


def _nl2br(render: Any, value: Any) -> Any:
    # Its input is escaped first when autoescaping and not safe (Twig's pre_escape): the renderer does it.
    text = php.text_argument(value, what="nl2br")
    tag = "<br />"
    return php.Markup(re.sub(r"(\r\n|\n\r|\n|\r)", lambda m: tag + m[0], text))


def _round_half_up(number: float, decimals: int) -> Decimal:
    """Return a float rounded half away from zero to ``decimals`` places (beyond a float's digits: unchanged)."""
    with localcontext() as context:
        context.prec = 800
        return Decimal(repr(float(number))).quantize(Decimal(1).scaleb(-max(-400, min(decimals, 400))),
                                                     rounding=ROUND_HALF_UP)


def number_format_value(number: float, decimals: int, point: str, thousands: str) -> str:
    """Return PHP's number_format: half away from zero, grouped thousands."""
    if not math.isfinite(number):
        return php.format_float(number)
    decimals = max(decimals, 0)
    rounded = _round_half_up(number, decimals)
    sign = "-" if rounded < 0 else ""
    text = f"{abs(rounded):.{min(decimals, 400)}f}" + "0" * max(0, decimals - 400)
    whole, _, fraction = text.partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    result = thousands.join(groups)
    if decimals > 0:
        result += point + fraction
    if sign and set(result) <= set("0" + point + thousands):
        sign = ""
    return sign + result


def _number_format(
    render: Any, value: Any, decimal: Any = None, decimal_point: Any = None, thousand_sep: Any = None
) -> str:
    decimals = 0 if decimal is None else php.to_int(decimal)
    if decimals > render.limits.max_size:
        raise _limit(f"number_format with {decimals} decimals exceeds {render.limits.max_size} characters")
    point = "." if decimal_point is None else php.to_string(decimal_point)
    thousands = "," if thousand_sep is None else php.to_string(thousand_sep)
    return number_format_value(php.to_float(value), decimals, point, thousands)


def _raw(render: Any, value: Any) -> Any:
    return value


def _replace(render: Any, value: Any, from_: Any) -> str:
    pairs = from_
    if not php.is_array(pairs):
        raise TwigRuntimeError(f'The "replace" filter expects a sequence or a mapping, got "{php.type_name(pairs)}".')
    text = php.text_argument(value, what="replace")
    mapping = {php.to_string(k): php.to_string(v) for k, v in php.items(pairs)}
    mapping = {k: v for k, v in mapping.items() if k != ""}
    if not mapping:
        return text
    growth = sum(text.count(key) * max(0, len(new) - len(key)) for key, new in mapping.items())
    if len(text) + growth > render.limits.max_size:
        raise _limit(f"replace would produce more than {render.limits.max_size} characters")
    # strtr: longest keys first, one pass.
    pattern = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))
    result = pattern.sub(lambda m: mapping[m[0]], text)
    return render.check_size(result)


def _reverse(render: Any, value: Any, preserve_keys: Any = False) -> Any:
    if not php.is_array(value):
        # As Twig: anything else is reversed as text.
        return php.to_string(value)[::-1]
    pairs = list(reversed(php.items(value)))
    if preserve_keys:
        return php.make_array(pairs) if not isinstance(value, list) else dict(pairs)
    result: dict[Any, Any] = {}
    for key, item in pairs:
        result[php.next_index(result) if isinstance(key, int) else key] = item
    return php.normalise(result)


def _round(render: Any, value: Any, precision: Any = 0, method: Any = "common") -> Any:
    number = php.to_float(value)
    digits = php.to_int(precision)
    if not math.isfinite(number):
        return number
    if method == "common":
        result = float(_round_half_up(number, digits))
    elif method in ("ceil", "floor"):
        factor = 10.0 ** max(-308, min(digits, 308))
        scaled = number * factor
        if not math.isfinite(scaled):
            return number
        result = (math.ceil(scaled) if method == "ceil" else math.floor(scaled)) / factor
    else:
        raise TwigRuntimeError('The round filter only supports the "common", "ceil", and "floor" methods.')
    return float(result)


def _slice(render: Any, value: Any, start: Any, length: Any = None, preserve_keys: Any = False) -> Any:
    start = php.to_int(start)
    if php.is_array(value):
        pairs = php.items(value)
        count = len(pairs)
        begin = max(0, count + start) if start < 0 else min(start, count)
        if length is None:
            end = count
        else:
            size = php.to_int(length)
            end = max(begin, count + size) if size < 0 else min(count, begin + size)
        chunk = pairs[begin:end]
        result: dict[Any, Any] = {}
        for key, item in chunk:
            if isinstance(key, int) and not preserve_keys:
                result[php.next_index(result)] = item
            else:
                result[key] = item
        return php.normalise(result)
    text = php.to_string(value)
    count = len(text)
    begin = max(0, count + start) if start < 0 else min(start, count)
    if length is None:
        return text[begin:]
    size = php.to_int(length)
    end = max(begin, count + size) if size < 0 else min(count, begin + size)
    return text[begin:end]


def _sort(render: Any, value: Any, arrow: Any = None) -> Any:
    _require_array("sort", value)
    pairs = php.items(value)
    if arrow is None:
        key = functools.cmp_to_key(lambda a, b: php.compare(a[1], b[1]) if php.compare(a[1], b[1]) != 2 else 0)
    else:
        key = functools.cmp_to_key(lambda a, b: php.to_int(render.call(arrow, a[1], b[1])))
    ordered = sorted(pairs, key=key)
    return _keep_keys(ordered)


def _keep_keys(pairs: list[tuple[Any, Any]]) -> Any:
    # asort keeps keys: a list whose order changed becomes a mapping with its old indexes.
    result = dict(pairs)
    return php.normalise(result)


def _shuffle(render: Any, value: Any) -> Any:
    if isinstance(value, str):
        letters = list(value)
        random.shuffle(letters)
        return "".join(letters)
    if not php.is_array(value):
        return value
    values = [item for _, item in php.items(value)]
    random.shuffle(values)
    return values


def _spaceless(render: Any, value: Any) -> Any:
    return php.Markup(re.sub(r">\s+<", "><", php.text_argument(value, what="trim")).strip())


def _split(render: Any, value: Any, delimiter: Any, limit: Any = None) -> Any:
    text = php.text_argument(value, what="split")
    delimiter = php.to_string(delimiter)
    if delimiter == "":
        size = 1 if limit is None or php.to_int(limit) <= 0 else php.to_int(limit)
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]
    if limit is None:
        return render.check_size(text.split(delimiter))
    count = php.to_int(limit)
    if count > 0:
        return text.split(delimiter, count - 1)
    parts = text.split(delimiter)
    if count < 0:
        return parts[:count]
    return [text] if count == 0 and delimiter not in text else [delimiter.join(parts)] if count == 0 else parts


def _striptags(render: Any, value: Any, allowable_tags: Any = None) -> str:
    allowed = allowable_tags
    text = php.text_argument(value, what="striptags")
    allowed_tags = set(re.findall(r"<(\w+)>", php.to_string(allowed))) if allowed else set()
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)

    def keep(match: re.Match[str]) -> str:
        name = re.match(r"</?\s*(\w+)", match[0])
        return match[0] if name and name[1].lower() in allowed_tags else ""

    return re.sub(r"<[^>]*>?", keep, text)


def _trim(render: Any, value: Any, character_mask: Any = None, side: Any = "both") -> str:
    characters = character_mask
    text = php.text_argument(value, what="trim")
    chars = " \t\n\r\0\x0b" if characters is None else php.to_string(characters)
    if side not in ("left", "right", "both"):
        raise TwigRuntimeError('Trimming side must be "left", "right" or "both".')
    trimmed = text.lstrip(chars) if side == "left" else text.rstrip(chars) if side == "right" else text.strip(chars)
    # As Twig: a safe string trimmed with the default characters stays safe.
    return php.Markup(trimmed) if isinstance(value, php.Markup) and character_mask is None else trimmed


def _url_encode(render: Any, value: Any) -> str:
    if php.is_array(value):
        _check_json_size(value, render.limits.max_size // 3, [0])
        return render.check_size(_http_build_query(value, None))
    return urllib.parse.quote(php.to_string(value), safe="-_.~")


def _http_build_query(value: Any, prefix: str | None) -> str:
    parts = []
    for key, item in php.items(value):
        name = php.to_string(key) if prefix is None else f"{prefix}[{php.to_string(key)}]"
        if php.is_array(item):
            inner = _http_build_query(item, name)
            if inner:
                parts.append(inner)
        elif item is None:
            continue
        else:
            text = "1" if item is True else "0" if item is False else php.to_string(item)
            parts.append(urllib.parse.quote(name, safe="-_.~") + "=" + urllib.parse.quote(text, safe="-_.~"))
    return "&".join(parts)


def _filter(render: Any, value: Any, arrow: Any) -> Any:
    _require_array("filter", value)
    kept = [(key, item) for key, item in php.items(value) if php.to_bool(render.call(arrow, item, key))]
    # array_filter keeps the keys.
    return php.normalise(dict(kept))


def _map(render: Any, value: Any, arrow: Any) -> Any:
    _require_array("map", value)
    return php.make_array([(key, render.call(arrow, item, key)) for key, item in php.items(value)])


def _reduce(render: Any, value: Any, arrow: Any, initial: Any = None) -> Any:
    _require_array("reduce", value)
    carry = initial
    for key, item in php.items(value):
        carry = render.call(arrow, carry, item, key)
    return carry


def _find(render: Any, value: Any, arrow: Any) -> Any:
    _require_array("find", value)
    for key, item in php.items(value):
        if php.to_bool(render.call(arrow, item, key)):
            return item
    return None


def _b64enc(render: Any, value: Any) -> str:
    return base64.b64encode(php.to_string(value).encode()).decode("ascii")


def _b64dec(render: Any, value: Any) -> str:
    try:
        return base64.b64decode(php.to_string(value), validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def _json_decode(render: Any, value: Any) -> Any:
    try:
        decoded = json.loads(php.to_string(value))
    except ValueError as exc:
        raise TwigRuntimeError(f"json_decode: the value is not JSON ({exc}).") from exc
    if not php.is_array(decoded):
        raise TwigRuntimeError(
            f"json_decode: OpenConnector's filter must return an array, the JSON is {php.type_name(decoded)}."
        )
    return decoded


def _slugify(render: Any, value: Any) -> str:
    # OpenConnector's MappingRuntime::createSlug (byte-wise strtolower, so non-ASCII letters are dropped).
    slug = php.to_string(value).lower()
    slug = slug.replace(" ", "-").replace("_", "-")
    slug = re.sub(r"[^a-z0-9\-]", "", slug)
    slug = re.sub(r"-+", "-", slug)
    return slug.strip("-")


def _convert_encoding(render: Any, value: Any, to: Any, from_: Any) -> str:
    # Strings here are text, not bytes: converting between encodings leaves the text as it is.
    for name in (to, from_):
        try:
            "".encode(php.to_string(name))
        except LookupError as exc:
            raise TwigRuntimeError(f'Unknown encoding "{name}".') from exc
    return php.to_string(value)


FILTERS: dict[str, Any] = {
    "abs": _abs,
    "batch": _batch,
    "capitalize": _capitalize,
    "column": _column,
    "date": _date,
    "date_modify": _date_modify,
    "default": _default,
    "e": _escape_filter,
    "escape": _escape_filter,
    "filter": _filter,
    "find": _find,
    "first": _first,
    "format": _format,
    "join": _join,
    "json_encode": _json_encode,
    "keys": _keys,
    "last": _last,
    "length": _length,
    "lower": _lower,
    "map": _map,
    "merge": _merge,
    "nl2br": _nl2br,
    "number_format": _number_format,
    "raw": _raw,
    "reduce": _reduce,
    "replace": _replace,
    "reverse": _reverse,
    "round": _round,
    "slice": _slice,
    "sort": _sort,
    "spaceless": _spaceless,
    "split": _split,
    "striptags": _striptags,
    "shuffle": _shuffle,
    "convert_encoding": _convert_encoding,
    "title": _title,
    "trim": _trim,
    "upper": _upper,
    "url_encode": _url_encode,
    # OpenConnector's MappingExtension
    "b64enc": _b64enc,
    "b64dec": _b64dec,
    "json_decode": _json_decode,
    "slugify": _slugify,
}
SAFE_FILTERS = ("raw", "escape", "e", "nl2br", "spaceless")


# -- functions


def range_function(render: Any, low: Any, high: Any, step: Any = 1) -> list[Any]:
    """Return PHP's range(): numbers, or single letters."""
    if (
        isinstance(low, str)
        and isinstance(high, str)
        and len(low) == 1
        and len(high) == 1
        and not (low.isdigit() and high.isdigit())
    ):
        start, end = ord(low), ord(high)
        step_size = abs(php.to_int(step)) or 1
        values = range(start, end + 1, step_size) if start <= end else range(start, end - 1, -step_size)
        _check_range(render, len(values))
        return [chr(v) for v in values]
    a, b, s = php.to_number(low), php.to_number(high), php.to_number(step)
    if s == 0:
        raise TwigRuntimeError("range(): Argument #3 ($step) cannot be 0.")
    s = abs(s)
    if all(isinstance(x, int) for x in (a, b, s)):
        values = range(a, b + 1, s) if a <= b else range(a, b - 1, -s)
        _check_range(render, len(values))
        return list(values)
    count = int(math.floor(abs(b - a) / s + 1e-9)) + 1
    _check_range(render, count)
    direction = 1 if a <= b else -1
    return [float(a + direction * i * s) for i in range(count)]


def _check_range(render: Any, count: int) -> None:
    from syncapp.twig.engine import LimitError

    if count > render.limits.max_range:
        raise LimitError(f"range of {count} items exceeds {render.limits.max_range}")


def _minmax(pick: Any, values: tuple[Any, ...]) -> Any:
    if len(values) == 1:
        if not php.is_array(values[0]):
            raise TwigRuntimeError("When only one parameter is given, it must be an array.")
        candidates = [v for _, v in php.items(values[0])]
    else:
        candidates = list(values)
    if not candidates:
        raise TwigRuntimeError("Array must contain at least one element.")
    best = candidates[0]
    for candidate in candidates[1:]:
        result = php.compare(candidate, best)
        if pick(result):
            best = candidate
    return best


def _max(render: Any, value: Any, *values: Any) -> Any:
    return _minmax(lambda r: r == 1, (value, *values))


def _min(render: Any, value: Any, *values: Any) -> Any:
    return _minmax(lambda r: r == -1, (value, *values))


def _random(render: Any, values: Any = None, max: Any = None) -> Any:  # noqa: A002
    if values is None:
        return random.randint(0, 2**31 - 1) if max is None else random.randint(0, php.to_int(max))
    if isinstance(values, int | float) and not isinstance(values, bool):
        low, high = (0, php.to_int(values)) if max is None else (php.to_int(values), php.to_int(max))
        return random.randint(min(low, high), builtins_max(low, high))
    if isinstance(values, str):
        return random.choice(values) if values else ""
    if php.is_array(values):
        pairs = php.items(values)
        if not pairs:
            raise TwigRuntimeError("The random function cannot pick from an empty sequence or mapping.")
        return random.choice(pairs)[1]
    return values


builtins_max = max


def _date_function(render: Any, date: Any = None, timezone: Any = None) -> datetime:
    return date_value(render, date, timezone)


def _cycle(render: Any, values: Any, position: Any) -> Any:
    if not php.is_array(values):
        raise TwigRuntimeError('The "cycle" function expects a sequence or a mapping.')
    pairs = php.items(values)
    if not pairs:
        raise TwigRuntimeError('The "cycle" function does not work on empty sequences/mappings.')
    return pairs[php.to_int(position) % len(pairs)][1]


def _attribute(render: Any, variable: Any, attribute: Any, arguments: Any = None) -> Any:
    value = render.attribute(variable, attribute, "any", missing=None)
    return value


FUNCTIONS: dict[str, Any] = {
    "attribute": _attribute,
    "range": range_function,
    "max": _max,
    "min": _min,
    "random": _random,
    "date": _date_function,
    "cycle": _cycle,
}

__all__ = ["FILTERS", "FUNCTIONS", "SAFE_FILTERS", "TESTS", "binary", "escape", "html"]
