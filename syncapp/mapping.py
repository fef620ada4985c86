"""The mapping language: turn one JSON object into another.

A mapping has four parts, applied in this order:

``mapping``
    target dot path -> source. A string source that is a dot path existing in the input copies that value
    with its type. Any other string is a Jinja2 template rendered with the input object as context (so a
    string without template syntax is a constant). Non-string sources are constants.
``unset``
    dot paths removed from the result.
``cast``
    dot path -> cast name, ``"name1,name2"`` or a list of names, applied in order.
``passThrough``
    start from a deep copy of the input instead of from ``{}``.
``language``
    the templates' language: ``jinja2`` (the default, below) or ``twig`` (OpenConnector's; see "Twig templates").

A result that is a dict whose only key is ``#`` becomes that value.

Templates
---------
Templates run in an immutable Jinja2 sandbox. Decisions a caller must know:

* A template that is exactly one expression, ``{{ ... }}`` with no text or whitespace around it, is
  evaluated with ``Environment.compile_expression`` and keeps its native value when that value is JSON-like
  (None, bool, number, list, dict); so ``"{{ data.items | map_each('animal') }}"`` yields a list. Other
  native values (generators, ranges, ...) fall back to the rendered string; add ``| list`` to get a list.
  Undefined renders as ``""``. Every other template renders to a string.
* On a dict, ``a.b`` looks the key ``b`` up before any attribute, so ``data.items`` is the key "items" and
  not ``dict.items``.
* Missing variables render as ``""`` (Jinja's default ``Undefined``); using an attribute of a missing
  value (``{{ missing.x }}``) is an error, as in Jinja.
* Resources are bounded per render: at most 1,000,000 characters of output (also inside macros, ``set``
  blocks and filter blocks), no single string or list over 1,000,000 characters or elements, ``range`` of
  at most 100,000 items, and at most 1,000,000 operations (calls, filter applications, loop iterations).
  ``map_each`` mappings nest at most 32 deep.

Twig templates
--------------
A mapping in ``twig`` renders its templates with :mod:`syncapp.twig` (Twig 3's syntax and semantics, PHP's
values) as OpenConnector's MappingService does: a default Twig environment (autoescape ``html``, undefined
variables null), then ``html_entity_decode`` of the output. Every template renders to a string: ``{{ true }}``
is ``"1"``, ``{{ list }}`` is ``"Array"`` (OpenConnector makes values of JSON text with the ``jsonToArray``
cast, which for Twig mappings is OpenConnector's). Dates are in UTC, as Nextcloud sets PHP's timezone.
OpenConnector's ``executeMapping`` (a mapping by reference, resolved as ``map_each`` resolves it, or a config
given inline), ``generateUuid`` and ``callSource`` (only where the caller passes ``call_source``: a run) are
there; its ``getFileContents`` and ``getFiles`` are not (unknown functions, refused when saved). The
same bounds hold: the operations budget, the output bound (also for values built inside the template), the
range bound and the nesting bound.

Every error is a :class:`MappingError`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import html
import json
import math
import re
import string
import types
import unicodedata
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Final

from jinja2 import Undefined, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.environment import Template, TemplateExpression
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from syncapp.dotpath import MISSING, delete_path, get_path, set_path
from syncapp.errors import SyncError
from syncapp.twig import Environment as TwigEnvironment
from syncapp.twig import Limits as TwigLimits
from syncapp.twig import Template as TwigTemplate
from syncapp.twig import TwigError, TwigSyntaxError, html_entity_decode, php_text

__all__ = [
    "JINJA2",
    "LANGUAGES",
    "TWIG",
    "MAX_MAPPING_DEPTH",
    "MAX_OPERATIONS",
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE",
    "UUID_NAMESPACE",
    "MappingError",
    "MappingSpec",
    "apply_mapping",
    "validate_mapping",
    "validate_mapping_config",
]

JINJA2: Final = "jinja2"
TWIG: Final = "twig"
# The template languages a mapping may be written in.
LANGUAGES: Final = (JINJA2, TWIG)
MAX_OUTPUT_CHARS: Final = 1_000_000
MAX_RANGE: Final = 100_000
MAX_OPERATIONS: Final = 1_000_000
MAX_MAPPING_DEPTH: Final = 32
# Bits of an integer power result; far beyond any real value, far below a memory problem.
_MAX_POWER_BITS: Final = 100_000
# A fixed namespace so the `uuid` filter gives the same id for the same value on every run and machine.
UUID_NAMESPACE: Final = uuid.UUID("6f1b7c8e-2d4a-5b3c-9e8f-0a1b2c3d4e5f")


class MappingError(SyncError, ValueError):
    """Report a mapping that cannot be applied; ``key`` names the dot path involved, if any."""

    def __init__(self, *, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return self.message if self.key is None else f"{self.key}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only constructor defeats the default exception pickling, which Celery relies on.
        return (_rebuild_mapping_error, (self.key, self.message))


def _rebuild_mapping_error(key: str | None, message: str) -> MappingError:
    """Recreate a MappingError from its pickled parts."""
    return MappingError(key=key, message=message)


class _NestingTooDeep(MappingError):
    """Report mappings nested beyond MAX_MAPPING_DEPTH; passed up unwrapped to keep the message short."""


class _LimitExceeded(Exception):
    """Stop a template that uses more than its share of time or memory."""


@dataclass(frozen=True)
class MappingSpec:
    """Hold one mapping: target paths, paths to unset, casts and the pass-through switch."""

    mapping: dict[str, Any] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    cast: dict[str, str | list[str]] = field(default_factory=dict)
    pass_through: bool = False
    language: str = JINJA2

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> MappingSpec:
        """Build a spec from the JSON config (``mapping``, ``unset``, ``cast``, ``passThrough``, ``language``).

        Raise MappingError when the config has the wrong shape; templates and casts are not checked here
        (use ``validate_mapping_config`` for that).
        """
        problems = _config_shape_problems(data)
        if problems:
            raise MappingError(key=None, message="invalid mapping config: " + "; ".join(problems))
        # Deep copies keep the spec independent of the caller's (mutable) config dict.
        return cls(
            mapping=copy.deepcopy(data.get("mapping") or {}),
            unset=list(data.get("unset") or []),
            cast=copy.deepcopy(data.get("cast") or {}),
            pass_through=bool(data.get("passThrough") or False),
            language=data.get("language") or JINJA2,
        )


# --------------------------------------------------------------------------------------------------
# Applying a mapping


@dataclass
class _Budget:
    """Count what one render may still spend."""

    operations_left: int = MAX_OPERATIONS


@dataclass(frozen=True)
class _MappingState:
    """Carry what nested ``map_each`` calls need from the apply_mapping call around them."""

    resolve_mapping: Callable[[str], MappingSpec] | None
    depth: int
    # Sends a Twig template's callSource(sourceId, endpoint, method, configuration) through the caller's
    # HTTP layer and returns the answer's body; None where templates may not call sources.
    call_source: Callable[..., str] | None = None


# Context variables rather than globals: the environment and compiled templates are shared between
# threads, while the resolver and the budget belong to one apply_mapping call or one render.
_state: ContextVar[_MappingState | None] = ContextVar("syncapp_mapping_state", default=None)
_budget: ContextVar[_Budget | None] = ContextVar("syncapp_mapping_budget", default=None)


def apply_mapping(
    *,
    spec: MappingSpec,
    data: dict[str, Any],
    resolve_mapping: Callable[[str], MappingSpec] | None = None,
    call_source: Callable[..., str] | None = None,
) -> Any:
    """Return ``data`` transformed by ``spec``; ``resolve_mapping`` looks up mappings for ``map_each``.

    ``call_source`` lets Twig templates call sources (``callSource``); nested mappings inherit it.
    """
    if not isinstance(data, dict):
        raise MappingError(key=None, message=f"input must be an object, not {_type_name(data)}")
    outer = _state.get()
    depth = 0 if outer is None else outer.depth + 1
    if depth > MAX_MAPPING_DEPTH:
        raise _NestingTooDeep(
            key=None, message=f"mappings nest deeper than {MAX_MAPPING_DEPTH} levels (does one map itself?)"
        )
    if call_source is None and outer is not None:
        call_source = outer.call_source
    token = _state.set(_MappingState(resolve_mapping=resolve_mapping, depth=depth, call_source=call_source))
    try:
        return _apply(spec=spec, data=data)
    finally:
        _state.reset(token)


def _apply(*, spec: MappingSpec, data: dict[str, Any]) -> Any:
    """Run the mapping, unset and cast steps."""
    result: dict[str, Any] = _copied(data) if spec.pass_through else {}
    if spec.language not in LANGUAGES:
        raise MappingError(
            key=None, message=f"unknown template language {spec.language!r} (use {' or '.join(LANGUAGES)})"
        )
    for target, source in spec.mapping.items():
        if not isinstance(target, str) or target in ("", "."):
            raise MappingError(key=str(target), message="target path must be a non-empty string")
        value = _evaluate(source=source, data=data, target=target, language=spec.language)
        try:
            set_path(result, target, value)
        except (TypeError, ValueError) as exc:
            raise MappingError(key=target, message=str(exc)) from exc
    for path in spec.unset:
        if not isinstance(path, str):
            raise MappingError(key=None, message=f"unset entries must be strings, not {_type_name(path)}")
        delete_path(result, path)
    for path, casts in spec.cast.items():
        _apply_casts(result=result, path=path, names=_cast_names(casts, path=path), source=data, language=spec.language)
    if isinstance(result, dict) and len(result) == 1 and "#" in result:
        root = result["#"]
        if spec.language == TWIG and not isinstance(root, dict | list):
            # OpenConnector's executeMapping always returns an array: null is [], a scalar [scalar].
            return [] if root is None else [root]
        return root
    return result


# Values a mapping may hand on without copying them.
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})
_NOT_COPIED: Final = object()


def _copied(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """Return copy.deepcopy(value), several times faster for JSON values: dicts and lists are copied here,
    str, int, float, bool and None handed on; anything else by deepcopy, with the same memo, so that a
    container met twice is copied once (as deepcopy has it) and a reference cycle does not recurse forever."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if memo is None:
        memo = {}
    copied = memo.get(id(value), _NOT_COPIED)
    if copied is not _NOT_COPIED:
        return copied
    if kind is dict:
        result: Any = {}
        memo[id(value)] = result
        for key, item in value.items():
            result[key if type(key) is str else copy.deepcopy(key, memo)] = (
                item if type(item) in _IMMUTABLE else _copied(item, memo)
            )
        return result
    if kind is list:
        result = []
        memo[id(value)] = result
        result.extend(item if type(item) in _IMMUTABLE else _copied(item, memo) for item in value)
        return result
    return copy.deepcopy(value, memo)


def _evaluate(*, source: Any, data: dict[str, Any], target: str, language: str = "jinja2") -> Any:
    """Return the value one mapping entry produces."""
    if language == TWIG and not isinstance(source, str | dict | list):
        # OpenConnector hands a scalar constant to its renderTemplateString(string), which PHP coerces:
        # false renders "", true "1", 0 "0"; null is refused there (a TypeError), so it is here.
        if source is None:
            raise MappingError(key=target, message="a null constant cannot be rendered (OpenConnector fails on it too)")
        source = php_text(source)
    if not isinstance(source, str):
        return _copied(source)
    # "" and "." would name the whole input; treat them as the constant strings they almost always are.
    if source not in ("", "."):
        value = get_path(data, source)
        if value is not MISSING:
            return value if type(value) in _IMMUTABLE else _copied(value)
    if language == TWIG:
        return _render_twig(source=source, context=data, key=target)
    return _render(source=source, context=data, key=target)


# --------------------------------------------------------------------------------------------------
# Templates


def _type_name(value: Any) -> str:
    """Name a value's type the way JSON users think of it."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check_size(value: Any) -> Any:
    """Return ``value`` unless it is a string or collection beyond the output bound."""
    if isinstance(value, str | bytes | list | tuple | dict | set) and len(value) > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(f"a value of {len(value)} characters or elements exceeds {MAX_OUTPUT_CHARS}")
    return value


def _check_width(width: Any) -> None:
    """Refuse a padding width that alone would exceed the output bound."""
    if isinstance(width, int) and width > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(f"a width of {width} exceeds {MAX_OUTPUT_CHARS}")


def _charge(operations: int = 1) -> None:
    """Spend template operations; stop the render when its budget is gone."""
    budget = _budget.get()
    if budget is None:
        # Constant folding at compile time runs outside any render; source size bounds it.
        return
    budget.operations_left -= operations
    if budget.operations_left < 0:
        raise _LimitExceeded(f"the template takes more than {MAX_OPERATIONS} operations")


def _check_replace(text: Any, old: Any, new: Any, count: Any = None) -> None:
    """Refuse a replace whose result would exceed the output bound, before building it."""
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    occurrences = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    if len(text) + occurrences * (len(new) - len(old)) > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(f"replace would produce more than {MAX_OUTPUT_CHARS} characters")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?")


def _big_number(digits: str) -> bool:
    """Return whether a run of digits names a width beyond the output bound."""
    # The length test first: int() refuses strings of more than 4300 digits.
    return len(digits) > 7 or int(digits) > MAX_OUTPUT_CHARS


def _check_percent_format(fmt: str, values: Any) -> None:
    """Refuse ``%`` formatting with widths or precisions beyond the output bound."""
    star = False
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in (match["width"], match["precision"]):
            if number == "*":
                star = True
            elif number and _big_number(number):
                raise _LimitExceeded(f"a format width of {number} exceeds {MAX_OUTPUT_CHARS}")
    if star:
        for value in values if isinstance(values, tuple) else (values,):
            _check_width(value)


def _check_brace_format(fmt: str, args: Iterable[Any], kwargs: dict[str, Any]) -> None:
    """Refuse ``str.format`` with widths or precisions beyond the output bound."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format reports the malformed string itself
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        for number in re.findall(r"\d+", spec):
            if _big_number(number):
                raise _LimitExceeded(f"a format width of {number} exceeds {MAX_OUTPUT_CHARS}")
        if "{" in spec:
            # A nested width comes from the arguments.
            for value in [*args, *kwargs.values()]:
                _check_width(value)


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse string methods whose result would exceed the output bound, before running them."""
    if name == "replace":
        _check_replace(text, *args[:3])
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int) and len(text) + text.count("\t") * tabsize > MAX_OUTPUT_CHARS:
            raise _LimitExceeded(f"expandtabs would produce more than {MAX_OUTPUT_CHARS} characters")


class _BoundedBuffer(list[str]):
    """Collect the output of a macro, ``set`` block or filter block, up to the output bound."""

    __slots__ = ("_size",)

    def __init__(self) -> None:
        super().__init__()
        self._size = 0

    def _grow(self, item: str) -> None:
        self._size += len(item)
        if self._size > MAX_OUTPUT_CHARS:
            raise _LimitExceeded(f"the template output exceeds {MAX_OUTPUT_CHARS} characters")

    def append(self, item: str) -> None:
        """Add one piece of output."""
        self._grow(item)
        super().append(item)

    def extend(self, items: Iterable[str]) -> None:
        """Add several pieces of output."""
        for item in items:
            self.append(item)


class _GuardedCodeGenerator(CodeGenerator):
    """Compile templates so that buffered output and ``~`` concatenation are size-checked."""

    def buffer(self, frame: Frame) -> None:
        """Start a bounded buffer for the frame (Jinja uses a plain list)."""
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """Compile ``a ~ b`` into a checked join; Jinja's own join never reaches the sandbox."""
        self.write("environment.checked_concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


_LOOP_GUARD_FILTER: Final = "_loop_guard"
_ALLOCATING_METHODS: Final = frozenset({"ljust", "rjust", "center", "zfill", "to_bytes"})


class _MappingEnvironment(ImmutableSandboxedEnvironment):
    """Sandbox for mapping templates, with JSON-friendly lookups and bounded resource use."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(autoescape=False, keep_trailing_newline=True)
        # lipsum(n=10**9) builds its output in one go, beyond any check.
        self.globals.pop("lipsum", None)
        self.globals.update(range=_bounded_range, map_each=_map_each, uuid=_uuid_filter)
        self.filters.update(
            json=_json_filter,
            b64enc=_b64enc_filter,
            b64dec=_b64dec_filter,
            slugify=_slugify_filter,
            uuid=_uuid_filter,
            date=_date_filter,
            map_each=_map_each,
        )
        self.filters = {name: _guard_filter(name, function) for name, function in self.filters.items()}
        self.filters[_LOOP_GUARD_FILTER] = _loop_guard

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse a template and make every ``for`` loop charge the operation budget per iteration."""
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Filter(loop.iter, _LOOP_GUARD_FILTER, [], [], None, None, lineno=loop.lineno)
        tree.set_environment(self)
        return tree

    def new_buffer(self) -> _BoundedBuffer:
        """Return an output buffer bounded by the output limit."""
        return _BoundedBuffer()

    def checked_concat(self, values: Iterable[Any]) -> str:
        """Join values as ``~`` does, refusing oversized results."""
        _charge()
        return _check_size("".join([str(value) for value in values]))

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Look keys of JSON objects up before attributes, so ``data.items`` means the key "items"."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        """Refuse unsafe attributes outright; Jinja's lenient Undefined would print them as ""."""
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply ``*``, ``**``, ``+`` and ``%`` without building oversized values."""
        _charge()
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | bytes | list | tuple)
                    and isinstance(times, int)
                    and len(sequence) * times > MAX_OUTPUT_CHARS
                ):
                    raise _LimitExceeded(f"repeating would produce more than {MAX_OUTPUT_CHARS} items")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right > 0
                and abs(left).bit_length() * right > _MAX_POWER_BITS
            ):
                raise _LimitExceeded(f"{left} ** {right} is too large")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left, right)
        return _check_size(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call from a template, refusing arguments and results beyond the bounds."""
        _charge()
        owner = getattr(obj, "__self__", None)
        if isinstance(obj, types.BuiltinMethodType) and isinstance(owner, str | bytes | int):
            if obj.__name__ in _ALLOCATING_METHODS:
                # These allocate their whole width up front, before any size check could run.
                for argument in [*args, *kwargs.values()]:
                    _check_width(argument)
            if isinstance(owner, str):
                _check_str_method(owner, obj.__name__, args, kwargs)
        return _check_size(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Wrap ``str.format`` and ``str.format_map`` so that huge widths are refused up front."""
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__
        is_format_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                mapping = args[0] if args and isinstance(args[0], dict) else {}
                _check_brace_format(fmt, (), mapping)
            else:
                _check_brace_format(fmt, args, kwargs)
            return _check_size(wrapper(*args, **kwargs))

        return functools.update_wrapper(checked, value)


def _bounded_range(*args: int) -> range:
    """Return ``range(*args)`` when it has at most MAX_RANGE items."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise _LimitExceeded(f"range of {len(numbers)} items exceeds {MAX_RANGE}")
    return numbers


@pass_context
def _loop_guard(context: Context, iterable: Any) -> Iterator[Any]:
    """Yield the items of a ``for`` loop, charging one operation each."""
    # pass_context keeps Jinja from folding constant loops at compile time, which would freeze the
    # generator into the template.
    for item in iterable:
        _charge()
        yield item


def _filter_value_and_args(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """Split a filter call into its value and its arguments, skipping a passed context or environment."""
    if getattr(function, "jinja_pass_arg", None) is not None:
        args = args[1:]
    return (args[0] if args else None), args[1:]


def _precheck_filter(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse filter arguments that would build an oversized result."""
    if name == "center":
        _check_width(args[0] if args else kwargs.get("width"))
    elif name in ("batch", "slice"):
        for argument in [*args[:1], kwargs.get("linecount"), kwargs.get("slices")]:
            _check_width(argument)
    elif name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        text = str(value)
        per_line = width if isinstance(width, int) else len(str(width))
        if len(text) + (text.count("\n") + 1) * per_line > MAX_OUTPUT_CHARS:
            raise _LimitExceeded(f"indent would produce more than {MAX_OUTPUT_CHARS} characters")
    elif name == "format" and isinstance(value, str):
        _check_percent_format(value, args if args else kwargs)
    elif name == "replace":
        old = args[0] if args else kwargs.get("old")
        new = args[1] if len(args) > 1 else kwargs.get("new")
        count = args[2] if len(args) > 2 else kwargs.get("count")
        _check_replace(str(value), old, new, count)


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so it charges the budget and cannot build oversized values."""

    # functools.wraps also copies `jinja_pass_arg`, so Jinja still passes context or environment.
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _charge()
        value, arguments = _filter_value_and_args(function, args)
        _precheck_filter(name, value, arguments, kwargs)
        return _check_size(function(*args, **kwargs))

    return guarded


# One expression and nothing around it; the inner text is then compiled on its own to confirm it.
_SINGLE_EXPRESSION: Final = re.compile(r"\{\{-?(?P<expression>.*?)-?\}\}", re.DOTALL)


@dataclass(frozen=True)
class _CompiledTemplate:
    """Hold a compiled template and, when it is one expression, that expression."""

    template: Template
    expression: TemplateExpression | None


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> _CompiledTemplate:
    """Compile a template once; raise TemplateSyntaxError for bad syntax."""
    template = _ENVIRONMENT.from_string(source)
    expression = None
    match = _SINGLE_EXPRESSION.fullmatch(source)
    if match is not None:
        try:
            expression = _ENVIRONMENT.compile_expression(match["expression"], undefined_to_none=False)
        except TemplateSyntaxError:
            # "{{ a }} and {{ b }}" matches the pattern but is not one expression: render it as text.
            expression = None
    return _CompiledTemplate(template=template, expression=expression)


def _syntax_message(exc: TemplateSyntaxError) -> str:
    """Describe a template syntax error."""
    return f"template syntax error: {exc.message} (line {exc.lineno})"


_NATIVE_TYPES: Final = (type(None), bool, int, float, str, list, tuple, dict)


def _plain(value: Any, size: list[int] | None = None) -> Any:
    """Return a JSON-ready deep copy of a template value, no larger serialised than MAX_OUTPUT_CHARS.

    The size counts every character and element as written out: a list that holds one long string a
    million times is small in memory and enormous once stored.
    """
    size = [0] if size is None else size
    if isinstance(value, str):
        size[0] += len(value)
    elif isinstance(value, dict | list | tuple):
        size[0] += 2 + len(value)
    elif value is None or isinstance(value, bool | int | float | Undefined):
        size[0] += 8
    else:
        value = str(value)
        size[0] += len(value)
    if size[0] > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(f"the value written out exceeds {MAX_OUTPUT_CHARS} characters")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return str(value)  # drops Markup
    if isinstance(value, Undefined):
        return None
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(key): _plain(item, size) for key, item in value.items()}
    return [_plain(item, size) for item in value]


def _render(*, source: str, context: dict[str, Any], key: str) -> Any:
    """Render a template with the input as context; return its native value when it is one expression."""
    try:
        compiled = _compile(source)
    except TemplateSyntaxError as exc:
        raise MappingError(key=key, message=_syntax_message(exc)) from exc
    except Exception as exc:  # e.g. RecursionError on absurdly nested expressions
        raise MappingError(key=key, message=f"template error: cannot compile: {exc!r}") from exc
    token = _budget.set(_Budget())
    try:
        if compiled.expression is not None:
            value = compiled.expression(context)
            if isinstance(value, Undefined):
                return ""
            if isinstance(value, _NATIVE_TYPES):
                return _check_size(_plain(value))
        pieces: list[str] = []
        size = 0
        for piece in compiled.template.generate(context):
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise _LimitExceeded(f"the template output exceeds {MAX_OUTPUT_CHARS} characters")
            pieces.append(piece)
        return "".join(pieces)
    except _NestingTooDeep as exc:
        exc.key = key  # each enclosing render overwrites it, so the outermost target is reported
        raise
    except MappingError as exc:
        raise MappingError(key=key, message=f"template error: {exc}") from exc
    except RecursionError as exc:
        raise MappingError(key=key, message="template error: recursion too deep") from exc
    except Exception as exc:  # every failure of user-written code becomes a MappingError
        raise MappingError(key=key, message=f"template error: {exc}") from exc
    finally:
        _budget.reset(token)


# --------------------------------------------------------------------------------------------------
# Template filters and globals


def _map_each(value: Any, reference: str) -> list[Any]:
    """Apply the mapping named ``reference`` to each element of a list."""
    state = _state.get()
    if state is None or state.resolve_mapping is None:
        raise MappingError(key=None, message=f"map_each: no mapping resolver to look up {reference!r}")
    if value is None or isinstance(value, Undefined):
        return []
    if not isinstance(value, list | tuple):
        raise MappingError(key=None, message=f"map_each expects an array, not {_type_name(value)}")
    try:
        spec = state.resolve_mapping(reference)
    except MappingError:
        raise
    except Exception as exc:  # the resolver is the caller's code; report what it raised
        raise MappingError(key=None, message=f"cannot resolve mapping {reference!r}: {exc}") from exc
    if not isinstance(spec, MappingSpec):
        raise MappingError(key=None, message=f"mapping {reference!r} resolved to {_type_name(spec)}")
    results = []
    for index, item in enumerate(value):
        _charge()
        try:
            results.append(apply_mapping(spec=spec, data=item, resolve_mapping=state.resolve_mapping))
        except _NestingTooDeep:
            raise
        except MappingError as exc:
            raise MappingError(key=None, message=f"mapping {reference!r}, element {index}: {exc}") from exc
    return results


def _json_filter(value: Any, indent: int | None = None) -> str:
    """Return the value as JSON text (a missing value is null)."""

    def undefined_to_null(obj: Any) -> Any:
        if isinstance(obj, Undefined):
            return None
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    return json.dumps(value, ensure_ascii=False, indent=indent, default=undefined_to_null)


def _b64enc_filter(value: Any) -> str:
    """Return the base64 encoding of the value's UTF-8 text."""
    return base64.b64encode(_to_string(value).encode()).decode("ascii")


def _b64dec_filter(value: Any) -> str:
    """Return the UTF-8 text a base64 string encodes."""
    return _decode_base64(str(value))


def _slugify_filter(value: Any) -> str:
    """Return a lowercase ASCII slug: "Café au Lait!" becomes "cafe-au-lait"."""
    text = unicodedata.normalize("NFKD", _to_string(value)).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _uuid_filter(value: Any = None) -> str:
    """Return a UUID: version 5 of the value (stable), or a random version 4 when there is no value."""
    if value is None or isinstance(value, Undefined) or value == "":
        return str(uuid.uuid4())
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return str(uuid.uuid5(UUID_NAMESPACE, text))


def _date_filter(value: Any, fmt: str = "%Y-%m-%d") -> str:
    """Format an ISO 8601 date string or an epoch number with ``strftime``; "" for no value."""
    if value is None or isinstance(value, Undefined) or value == "":
        return ""
    return _parse_datetime(value).strftime(fmt)


# Built after the filters and globals it registers are defined.
_ENVIRONMENT: Final = _MappingEnvironment()


# --------------------------------------------------------------------------------------------------
# Twig templates


# OpenConnector renders in Nextcloud, whose OC::init() sets PHP's default timezone to UTC
# (nextcloud/server lib/base.php: date_default_timezone_set('UTC')); Twig's date filter uses it.
TWIG_TIMEZONE: Final = "UTC"
# executeMapping's parameter "list" (Twig's name) shadows the builtin inside it.
_LIST: Final = list


def _execute_mapping(render: Any, mapping: Any, input: Any, list: Any = False) -> Any:  # noqa: A002 - Twig's names
    """Apply another mapping (a reference, or a config given inline) to ``input``: OpenConnector's executeMapping."""
    state = _state.get()
    if isinstance(mapping, dict):
        spec = MappingSpec.from_config({"language": TWIG, **mapping})
    elif isinstance(mapping, str | int) and not isinstance(mapping, bool):
        if state is None or state.resolve_mapping is None:
            raise MappingError(key=None, message=f"executeMapping: no mapping resolver to look up {mapping!r}")
        try:
            spec = state.resolve_mapping(str(mapping))
        except MappingError:
            raise
        except Exception as exc:  # the resolver is the caller's code; report what it raised
            raise MappingError(key=None, message=f"cannot resolve mapping {mapping!r}: {exc}") from exc
    else:
        raise MappingError(
            key=None, message=f"executeMapping: a mapping is a reference or an object, not {_type_name(mapping)}"
        )
    if not isinstance(input, dict | _LIST):
        raise MappingError(key=None, message=f"executeMapping: the input must be an array, not {_type_name(input)}")
    resolver = state.resolve_mapping if state is not None else None

    def apply(data: Any) -> Any:
        _charge()
        if not isinstance(data, dict):
            data = {str(index): item for index, item in enumerate(data)}
        result = apply_mapping(spec=spec, data=data, resolve_mapping=resolver)
        # As OpenConnector: the result is always an array.
        if result is None:
            return []
        return result if isinstance(result, dict | _LIST) else [result]

    if list:
        items = input.items() if isinstance(input, dict) else enumerate(input)
        results = {}
        for key, value in items:
            if not isinstance(value, dict | _LIST):
                # As OpenConnector: a scalar element is mapped as {"0": value, "value": value}.
                value = {"0": value, "value": value}
            results[key] = apply(value)
        return results if isinstance(input, dict) else [results[index] for index in range(len(input))]
    return apply(input)


def _call_source(
    render: Any, sourceId: Any, endpoint: Any, method: Any = "GET", configuration: Any = None, decode: Any = True  # noqa: N803
) -> str:
    """Call a source and return the answer's body as text: OpenConnector's callSource (``decode`` is unused
    there too; decode JSON with ``|json_decode``)."""
    state = _state.get()
    if state is None or state.call_source is None:
        raise MappingError(key=None, message="callSource: calling a source is not possible here (only in a run)")
    if configuration is not None and not isinstance(configuration, dict | _LIST):
        raise MappingError(
            key=None, message=f"callSource: the configuration must be an array, not {_type_name(configuration)}"
        )
    _charge()
    return state.call_source(
        source_id=str(sourceId), endpoint=str(endpoint), method=str(method),
        configuration=configuration if isinstance(configuration, dict) else {},
    )


def _generate_uuid(render: Any) -> str:
    """Return a random version 4 UUID: OpenConnector's generateUuid()."""
    return str(uuid.uuid4())


def _twig_environment() -> TwigEnvironment:
    """Return the environment Twig mappings render in: OpenConnector's (autoescape html, not strict)."""
    environment = TwigEnvironment(autoescape="html", timezone=TWIG_TIMEZONE)
    environment.functions.update(executeMapping=_execute_mapping, generateUuid=_generate_uuid, callSource=_call_source)
    return environment


_TWIG_ENVIRONMENT: Final = _twig_environment()
_TWIG_LIMITS: Final = TwigLimits(
    charge=_charge, max_output=MAX_OUTPUT_CHARS, max_range=MAX_RANGE, max_size=MAX_OUTPUT_CHARS
)


@functools.lru_cache(maxsize=4096)
def _compile_twig(source: str) -> TwigTemplate:
    """Parse a Twig template once; raise TwigSyntaxError for bad syntax."""
    return _TWIG_ENVIRONMENT.from_string(source)


def _twig_syntax_message(exc: TwigSyntaxError) -> str:
    """Describe a Twig syntax error."""
    return f"template syntax error: {exc.message} (line {exc.line or 1})"


def _render_twig(*, source: str, context: dict[str, Any], key: str) -> str:
    """Render a Twig template as OpenConnector does: HTML-escaped output, then html_entity_decode'd."""
    try:
        template = _compile_twig(source)
    except TwigSyntaxError as exc:
        raise MappingError(key=key, message=_twig_syntax_message(exc)) from exc
    except RecursionError as exc:
        raise MappingError(key=key, message="template error: cannot compile: nested too deeply") from exc
    token = _budget.set(_Budget())
    try:
        return html_entity_decode(template.render(context, limits=_TWIG_LIMITS))
    except _NestingTooDeep as exc:
        exc.key = key
        raise
    except MappingError as exc:
        raise MappingError(key=key, message=f"template error: {exc}") from exc
    except TwigError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise MappingError(key=key, message=f"template error: {exc.message}{where}") from exc
    except RecursionError as exc:
        raise MappingError(key=key, message="template error: recursion too deep") from exc
    except Exception as exc:  # every failure of user-written code becomes a MappingError
        raise MappingError(key=key, message=f"template error: {exc}") from exc
    finally:
        _budget.reset(token)


# --------------------------------------------------------------------------------------------------
# Casts


class _CastError(Exception):
    """Report a value one cast cannot convert."""


_REMOVE: Final = object()

_TRUE_WORDS: Final = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS: Final = frozenset({"false", "0", "no", "off", ""})
_EPOCH_MILLISECONDS_FROM: Final = 100_000_000_000  # 1e11 seconds is the year 5138; beyond, it is ms
_DATE_FORMATS: Final = tuple(
    f"{day}{time}"
    for day in ("%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%Y.%m.%d")
    for time in ("", " %H:%M", " %H:%M:%S")
)


def _to_string(value: Any) -> str:
    """Return value as text: JSON spelling for null, booleans, arrays and objects."""
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _as_text(value: Any) -> str:
    """Return the text ``unsetIfValue``/``setNullIfValue`` compare: strings as is, others as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _is_blank(value: Any) -> bool:
    """Return whether a value is null or an empty (or whitespace) string."""
    return value is None or (isinstance(value, str) and not value.strip())


def _cast_int(value: Any) -> int | None:
    """Cast to int: "12" -> 12, "12.7" and 12.7 -> 12 (truncated); null and "" -> null."""
    if _is_blank(value):
        return None
    if isinstance(value, int):  # bool included: True is 1
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _CastError("not a finite number")
        return int(value)
    if isinstance(value, str):
        try:
            # Decimal rather than float: "12345678901234567890" must not lose digits.
            number = Decimal(value.strip())
            if not number.is_finite():
                raise _CastError("not a finite number")
            return int(number)
        except InvalidOperation as exc:
            raise _CastError("not a number") from exc
    raise _CastError(f"expected a number, not {_type_name(value)}")


def _cast_float(value: Any) -> float | None:
    """Cast to float: "1.5" -> 1.5; null and "" -> null; NaN and infinity are refused."""
    if _is_blank(value):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError as exc:
            raise _CastError("not a number") from exc
    else:
        raise _CastError(f"expected a number, not {_type_name(value)}")
    if not math.isfinite(number):
        raise _CastError("not a finite number")
    return number


def _cast_bool(value: Any) -> bool:
    """Cast to bool: true/1/yes/on and false/0/no/off/"" (any case), numbers by truthiness; null -> False."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise _CastError("not a boolean word")
    raise _CastError(f"expected a boolean, not {_type_name(value)}")


def _cast_optional_bool(value: Any) -> bool | None:
    """Cast like ``bool`` but keep null and "" as null."""
    return None if _is_blank(value) else _cast_bool(value)


def _cast_array(value: Any) -> list[Any]:
    """Wrap a non-list value in a list; null -> []."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _cast_json(value: Any) -> Any:
    """Parse a JSON string; "" -> null; non-strings are already structured and stay as they are."""
    if not isinstance(value, str):
        return value  # already structured
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise _CastError(f"not JSON ({exc.msg})") from exc


def _cast_json_to_array(value: Any) -> list[Any]:
    """Parse JSON into a list: an object gives its values, a scalar is wrapped; null and "" -> []."""
    if isinstance(value, str):
        value = _cast_json(value)
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else [value]


def _cast_json_to_array_as_openconnector(value: Any) -> Any:
    """Decode JSON text as OpenConnector's jsonToArray does (for Twig mappings, whose templates write JSON):
    an array stays, text is entity-decoded then json_decode'd (objects stay objects), and text that is not
    JSON becomes null."""
    if isinstance(value, dict | list):
        return value
    try:
        return json.loads(html_entity_decode(php_text(value)))
    except (ValueError, RecursionError):
        return None


def _cast_null_string_to_null(value: Any) -> Any:
    """Turn the string "null" (any case) into null."""
    return None if isinstance(value, str) and value.strip().lower() == "null" else value


def _scalar_text(value: Any) -> str:
    """Return a scalar as text for the encoding casts; arrays and objects cannot be encoded."""
    if isinstance(value, dict | list):
        raise _CastError(f"expected a string or number, not {_type_name(value)}")
    return _to_string(value)


def _require_string(value: Any) -> str:
    """Return the value when it is a string; the decoding casts accept nothing else."""
    if not isinstance(value, str):
        raise _CastError(f"expected a string, not {_type_name(value)}")
    return value


def _decode_base64(text: str) -> str:
    """Return the UTF-8 text of standard or URL-safe base64, padding optional."""
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise _CastError("not base64-encoded UTF-8 text") from exc


def _cast_base64(value: Any) -> str | None:
    """Encode the UTF-8 text of a string or number as base64."""
    return None if value is None else base64.b64encode(_scalar_text(value).encode()).decode("ascii")


def _cast_base64_decode(value: Any) -> str | None:
    """Decode base64 (standard or URL-safe, padding optional) into UTF-8 text."""
    return None if value is None else _decode_base64(_require_string(value))


def _cast_url(value: Any) -> str | None:
    """Percent-encode a string or number as one URL component."""
    # safe="" so that "/" is encoded too: the result is meant to be one URL component.
    return None if value is None else urllib.parse.quote(_scalar_text(value), safe="")


def _cast_url_decode(value: Any) -> str | None:
    """Decode a percent-encoded string."""
    return None if value is None else urllib.parse.unquote(_require_string(value))


def _cast_html(value: Any) -> str | None:
    """Escape a string or number for HTML."""
    return None if value is None else html.escape(_scalar_text(value))


def _cast_html_decode(value: Any) -> str | None:
    """Unescape HTML entities in a string."""
    return None if value is None else html.unescape(_require_string(value))


def _from_epoch(number: float) -> datetime:
    """Return the UTC datetime of an epoch in seconds, or in milliseconds when it is that large."""
    if abs(number) >= _EPOCH_MILLISECONDS_FROM:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _CastError("epoch out of range") from exc


def _parse_datetime(value: Any) -> datetime:
    """Return the datetime a date/time string or epoch number names.

    Strings: ISO 8601, day-first dates ("31-12-2024", "31/12/2024 13:45"), year-first with slashes and
    RFC 2822. Naive strings stay naive; epochs are UTC.
    """
    if isinstance(value, bool):
        raise _CastError("a boolean is not a date")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _CastError("not a finite number")
        return _from_epoch(value)
    if not isinstance(value, str):
        raise _CastError(f"expected a date, not {_type_name(value)}")
    text = value.strip()
    try:
        # Before the epoch test: "20240301" is a basic-format ISO date, not 1970-08-23.
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return _from_epoch(float(text))
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    raise _CastError("not a recognised date/time")


def _cast_datetime(value: Any) -> str | None:
    """Return the ISO 8601 form of a date/time string or epoch; null and "" -> null."""
    return None if _is_blank(value) else _parse_datetime(value).isoformat()


def _money_decimal(value: Any) -> Decimal:
    """Return an amount as an exact Decimal."""
    if isinstance(value, bool):
        raise _CastError("a boolean is not an amount")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # str() first: Decimal(0.1) would carry the binary error into the cents.
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise _CastError(f"expected an amount, not {_type_name(value)}")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise _CastError("not an amount") from exc
    if not amount.is_finite():
        raise _CastError("not a finite amount")
    return amount


def _cast_money_string_to_int(value: Any) -> int | None:
    """Return an amount in cents: "12.34" -> 1234, rounding half away from zero."""
    if _is_blank(value):
        return None
    return int((_money_decimal(value) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _cast_int_to_money_string(value: Any) -> str | None:
    """Return cents as an amount string: 1234 -> "12.34"."""
    if _is_blank(value):
        return None
    cents = _money_decimal(value)
    if cents != cents.to_integral_value():
        raise _CastError("not a whole number of cents")
    whole, rest = divmod(abs(int(cents)), 100)
    return f"{'-' if cents < 0 else ''}{whole}.{rest:02d}"


def _cast_coordinate_string_to_array(value: Any) -> list[float] | None:
    """Split "52.1,4.3" (or "52.1 4.3", optional third number) into floats."""
    if _is_blank(value):
        return None
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        raise _CastError(f"expected a string, not {_type_name(value)}")
    parts = re.split(r"\s*,\s*|\s+", value.strip())
    if len(parts) not in (2, 3):
        raise _CastError("expected 2 or 3 numbers")
    try:
        numbers = [float(part) for part in parts]
    except ValueError as exc:
        raise _CastError("not a number") from exc
    if not all(math.isfinite(number) for number in numbers):
        raise _CastError("not a finite number")
    return numbers


_SIMPLE_CASTS: Final[dict[str, Callable[[Any], Any]]] = {
    "string": _to_string,
    "int": _cast_int,
    "integer": _cast_int,
    "float": _cast_float,
    "bool": _cast_bool,
    "boolean": _cast_bool,
    "?bool": _cast_optional_bool,
    "array": _cast_array,
    "json": _cast_json,
    "jsonToArray": _cast_json_to_array,
    "nullStringToNull": _cast_null_string_to_null,
    "base64": _cast_base64,
    "base64Decode": _cast_base64_decode,
    "url": _cast_url,
    "urlDecode": _cast_url_decode,
    "html": _cast_html,
    "htmlDecode": _cast_html_decode,
    "datetime": _cast_datetime,
    "moneyStringToInt": _cast_money_string_to_int,
    "intToMoneyString": _cast_int_to_money_string,
    "coordinateStringToArray": _cast_coordinate_string_to_array,
}
_VALUE_TESTS: Final = ("unsetIfValue==", "setNullIfValue==")
_COUNT_VALUE: Final = "countValue:"
_KEY_CANT_BE_VALUE: Final = "keyCantBeValue"


def _cast_names(casts: Any, *, path: str) -> list[str]:
    """Return the cast names of one cast entry: a name, "a,b" or a list of names."""
    if isinstance(casts, str):
        # Comma-separated names are stripped; use the list form for an X with commas or edge spaces.
        return [name.strip() for name in casts.split(",")]
    if isinstance(casts, list) and all(isinstance(name, str) for name in casts):
        return list(casts)
    raise MappingError(key=path, message="casts must be a string or a list of strings")


def _cast_problem(name: str) -> str | None:
    """Return why a cast name is invalid, or None."""
    if name in _SIMPLE_CASTS or name == _KEY_CANT_BE_VALUE or name.startswith(_VALUE_TESTS):
        return None
    if name.startswith(_COUNT_VALUE):
        return None if name[len(_COUNT_VALUE) :] else f'cast "{name}" needs a path'
    return f'unknown cast "{name}"'


def _apply_casts(
    *, result: dict[str, Any], path: str, names: list[str], source: dict[str, Any], language: str = JINJA2
) -> None:
    """Apply the casts of one path in order; stop when the path is gone."""
    if not isinstance(path, str) or path in ("", "."):
        raise MappingError(key=str(path), message="cast path must be a non-empty string")
    for name in names:
        problem = _cast_problem(name)
        if problem is not None:
            raise MappingError(key=path, message=problem)
        value = get_path(result, path)
        if value is MISSING:
            return  # casts convert values; they never create a path
        try:
            outcome = _cast_value(name=name, value=value, path=path, source=source, language=language)
        except _CastError as exc:
            raise MappingError(key=path, message=f'cast "{name}" cannot convert {_preview(value)}: {exc}') from exc
        try:
            if outcome is _REMOVE:
                delete_path(result, path)
                return
            set_path(result, path, outcome)
        except (TypeError, ValueError) as exc:
            raise MappingError(key=path, message=str(exc)) from exc


def _cast_value(*, name: str, value: Any, path: str, source: dict[str, Any], language: str = JINJA2) -> Any:
    """Return the cast value, or _REMOVE when the cast removes the key."""
    if name == "jsonToArray" and language == TWIG:
        return _cast_json_to_array_as_openconnector(value)
    if name.startswith("unsetIfValue=="):
        return _REMOVE if _as_text(value) == name[len("unsetIfValue==") :] else value
    if name.startswith("setNullIfValue=="):
        return None if _as_text(value) == name[len("setNullIfValue==") :] else value
    if name == _KEY_CANT_BE_VALUE:
        return _REMOVE if isinstance(value, str) and value in (path, path.rsplit(".", 1)[-1]) else value
    if name.startswith(_COUNT_VALUE):
        counted = get_path(source, name[len(_COUNT_VALUE) :])
        if counted is MISSING or counted is None:
            return 0
        if not isinstance(counted, list | dict):
            raise _CastError(f"countValue needs an array in the input, found {_type_name(counted)}")
        return len(counted)
    return _SIMPLE_CASTS[name](value)


def _preview(value: Any) -> str:
    """Return a short repr of a value for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------------
# Validation


def validate_mapping(*, spec: MappingSpec, known_references: set[str] | None = None) -> list[str]:
    """Return the problems of a mapping, checked without data; each names its key."""
    problems: list[str] = []
    if spec.language not in LANGUAGES:
        problems.append(f"language: must be one of {', '.join(LANGUAGES)}, not {spec.language!r}")
    check = _twig_template_problems if spec.language == TWIG else _template_problems
    for target, source in spec.mapping.items():
        if not isinstance(target, str) or target in ("", "."):
            problems.append(f"mapping.{target}: target path must be a non-empty string")
        if isinstance(source, str):
            problems.extend(f"mapping.{target}: {problem}" for problem in check(source, known_references))
        elif source is None and spec.language == TWIG:
            problems.append(f"mapping.{target}: a null constant cannot be rendered (OpenConnector fails on it too)")
    for index, path in enumerate(spec.unset):
        if not isinstance(path, str):
            problems.append(f"unset.{index}: must be a string, not {_type_name(path)}")
    for path, casts in spec.cast.items():
        try:
            names = _cast_names(casts, path=path)
        except MappingError as exc:
            problems.append(f"cast.{path}: {exc.message}")
            continue
        problems.extend(f"cast.{path}: {problem}" for name in names if (problem := _cast_problem(name)))
    return problems


def _template_problems(source: str, known_references: set[str] | None) -> list[str]:
    """Return the syntax problems of a template and the unknown mappings its ``map_each`` calls name."""
    try:
        _compile(source)
    except TemplateSyntaxError as exc:
        return [_syntax_message(exc)]
    except Exception as exc:  # e.g. RecursionError on absurdly nested expressions
        return [f"template error: cannot compile: {exc!r}"]
    if known_references is None:
        return []
    tree = _ENVIRONMENT.parse(source)
    return [
        f'unknown mapping reference "{reference}"'
        for reference in _map_each_references(tree)
        if reference not in known_references
    ]


def _twig_template_problems(source: str, known_references: set[str] | None) -> list[str]:
    """Return the syntax problems of a Twig template (with their line)."""
    try:
        _compile_twig(source)
    except TwigSyntaxError as exc:
        return [_twig_syntax_message(exc)]
    except RecursionError:
        return ["template error: cannot compile: nested too deeply"]
    return []


def _map_each_references(tree: nodes.Template) -> list[str]:
    """Return the literal mapping references of ``map_each`` filters and calls, in order."""
    references: list[str] = []
    for node in tree.find_all((nodes.Filter, nodes.Call)):
        if isinstance(node, nodes.Filter) and node.name == "map_each":
            positional = node.args[:1]
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "map_each":
            positional = node.args[1:2]
        else:
            continue
        keywords = [keyword.value for keyword in node.kwargs if keyword.key == "reference"]
        for argument in [*positional, *keywords]:
            if isinstance(argument, nodes.Const) and isinstance(argument.value, str):
                references.append(argument.value)
    return references


def _config_shape_problems(data: Any) -> list[str]:
    """Return the problems of a raw JSON mapping config's shape."""
    if not isinstance(data, dict):
        return [f"mapping config must be an object, not {_type_name(data)}"]
    problems: list[str] = []
    mapping = data.get("mapping")
    if mapping is not None:
        if not isinstance(mapping, dict):
            problems.append(f"mapping: must be an object, not {_type_name(mapping)}")
        else:
            problems.extend(
                f"mapping.{key!r}: target path must be a string" for key in mapping if not isinstance(key, str)
            )
    unset = data.get("unset")
    if unset is not None:
        if not isinstance(unset, list):
            problems.append(f"unset: must be an array, not {_type_name(unset)}")
        else:
            problems.extend(
                f"unset.{index}: must be a string, not {_type_name(path)}"
                for index, path in enumerate(unset)
                if not isinstance(path, str)
            )
    cast = data.get("cast")
    if cast is not None:
        if not isinstance(cast, dict):
            problems.append(f"cast: must be an object, not {_type_name(cast)}")
        else:
            problems.extend(f"cast.{key!r}: path must be a string" for key in cast if not isinstance(key, str))
    pass_through = data.get("passThrough")
    if pass_through is not None and not isinstance(pass_through, bool):
        problems.append(f"passThrough: must be a boolean, not {_type_name(pass_through)}")
    language = data.get("language")
    if language is not None and language not in LANGUAGES:
        problems.append(f"language: must be one of {', '.join(LANGUAGES)}, not {language!r}")
    return problems


def validate_mapping_config(data: Any, *, known_references: set[str] | None = None) -> list[str]:
    """Return the problems of a raw JSON mapping config: its shape first, then its content."""
    problems = _config_shape_problems(data)
    if problems:
        return problems
    return validate_mapping(spec=MappingSpec.from_config(data), known_references=known_references)
