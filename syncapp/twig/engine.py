"""Render a parsed Twig template: the evaluator, with Twig 3's runtime semantics.

Not strict_variables (as OpenConnector's Environment): an undefined variable or attribute is null.
Resource use is bounded through the :class:`Limits` the caller gives: every operation (filter, function,
loop iteration, attribute, operator) is charged, output and values are bounded in size, ranges in length.
"""

from __future__ import annotations

import difflib
import inspect
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncapp.twig import php
from syncapp.twig.errors import TwigError, TwigRuntimeError, TwigSyntaxError
from syncapp.twig.parser import Node, parse

__all__ = ["Environment", "Limits", "Template"]

_MISSING = object()


@dataclass(frozen=True)
class Limits:
    """Say what a render may use; ``charge`` spends operations (and raises when there are none left)."""

    charge: Callable[[int], None]
    max_output: int
    max_range: int
    max_size: int


def _no_charge(_operations: int) -> None:
    return None


UNLIMITED = Limits(charge=_no_charge, max_output=10**12, max_range=10**12, max_size=10**12)


class LimitError(TwigRuntimeError):
    """Report a render beyond its bounds."""


class _Output:
    """Collect output, bounded."""

    __slots__ = ("limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limit:
            raise LimitError(f"the template output exceeds {self.limit} characters")
        self.parts.append(text)

    def value(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True)
class Arrow:
    """An arrow function: its parameters, body and the context it was made in."""

    params: list[str]
    body: Node
    context: dict[str, Any]
    render: Any

    def __call__(self, *args: Any) -> Any:
        context = dict(self.context)
        for name, value in zip(self.params, args, strict=False):
            context[name] = value
        return self.render.evaluate(self.body, context)


class Template:
    """A parsed template, ready to render with a context."""

    def __init__(self, environment: Environment, source: str) -> None:
        self.environment = environment
        self.body = parse(source)
        environment.check(self.body)

    def render(self, context: dict[str, Any], *, limits: Limits = UNLIMITED) -> str:
        """Return the template's output for ``context``."""
        return _Render(self.environment, limits).run(self.body, {**self.environment.globals, **context})


class Environment:
    """Hold the filters, functions and tests templates may use, and the escaping strategy."""

    def __init__(
        self, *, autoescape: str | bool = False, timezone: str = "UTC", strict_variables: bool = False
    ) -> None:
        from syncapp.twig import library

        self.autoescape = autoescape
        self.strict_variables = strict_variables
        # Variables every template sees (the context wins), also inside {% with ... only %}.
        self.globals: dict[str, Any] = {}
        self.timezone = timezone
        self.filters: dict[str, Callable[..., Any]] = dict(library.FILTERS)
        self.functions: dict[str, Callable[..., Any]] = dict(library.FUNCTIONS)
        self.tests: dict[str, Callable[..., Any]] = dict(library.TESTS)
        self.safe_filters = set(library.SAFE_FILTERS)

    def from_string(self, source: str) -> Template:
        """Parse a template; raise TwigSyntaxError with its line when it does not parse."""
        return Template(self, source)

    def check(self, body: list[Node]) -> None:
        """Refuse unknown filters, functions and tests, and arguments they do not take, as Twig does."""
        for node in _walk(body):
            if node.kind == "binary" and node.op == "matches" and node.right.kind == "const":
                from syncapp.twig import library

                try:
                    library.compile_regex(php.to_string(node.right.value))
                except TwigRuntimeError as exc:
                    raise TwigSyntaxError(exc.message, node.line) from exc
            if node.kind in ("filter", "filtercall"):
                registry, what, skip = self.filters, "filter", 2
            elif node.kind == "function":
                registry, what, skip = self.functions, "function", 1
            elif node.kind == "test":
                registry, what, skip = self.tests, "test", 1
            else:
                continue
            if node.name not in registry:
                close = difflib.get_close_matches(node.name, registry, n=3, cutoff=0.75)
                hint = f' Did you mean "{close[0]}"?' if len(close) == 1 else (
                    " Did you mean " + ", ".join(f'"{name}"' for name in close) + "?" if close else ""
                )
                raise TwigSyntaxError(f'Unknown "{node.name}" {what}.{hint}', node.line)
            _check_arguments(registry[node.name], node.args, skip=skip, what=f'{what} "{node.name}"', line=node.line)


def _python_name(name: str) -> str:
    """Return the Python parameter name of a Twig argument name: "from" is "from_", and the camelCase of
    the PHP parameter ("preserveKeys") is its snake_case, as Twig takes both."""
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", lambda match: "_" + match[1].lower(), name)
    return name + "_" if keyword.iskeyword(name) else name


def _check_arguments(function: Any, args: list[Any], *, skip: int, what: str, line: int) -> None:
    """Refuse, when parsing, arguments a filter, function or test cannot take."""
    if any(spread for _, _, spread in args):
        return
    try:
        parameters = list(inspect.signature(function).parameters.values())[skip:]
    except (TypeError, ValueError):
        return
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    positional = [value for name, value, _ in args if name is None]
    given: set[str] = set()
    if len(positional) > len(named) and not variadic:
        raise TwigSyntaxError(f"Too many arguments for {what}.", line)
    given.update(p.name for p in named[: len(positional)])
    for name, _, _ in args:
        if name is None:
            continue
        python_name = _python_name(name)
        if python_name not in {p.name for p in named}:
            raise TwigSyntaxError(f'Unknown argument "{name}" for {what}.', line)
        if python_name in given:
            raise TwigSyntaxError(f'Argument "{name}" is defined twice for {what}.', line)
        given.add(python_name)
    for parameter in named:
        if parameter.default is inspect.Parameter.empty and parameter.name not in given:
            raise TwigSyntaxError(f'Value for argument "{parameter.name.rstrip("_")}" is required for {what}.', line)


def _walk(value: Any) -> list[Node]:
    """Return every node under ``value``, each after the nodes it contains (roughly the order Twig parses
    them in: ``a|f|g`` gives f before g), so that the first problem found is the one Twig reports."""
    found: list[Node] = []
    # An explicit stack: a template nested deeply must not exhaust Python's recursion.
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, expanded = stack.pop()
        if isinstance(item, Node):
            if expanded:
                found.append(item)
                continue
            stack.append((item, True))
            stack.extend((child, False) for child in reversed(list(item.fields.values())))
        elif isinstance(item, list | tuple):
            stack.extend((child, False) for child in reversed(item))
    return found


# Filters whose input is HTML-escaped first when autoescaping (Twig's pre_escape).
PRE_ESCAPE_FILTERS = frozenset({"nl2br"})

_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#039;"}
_HTML_ESCAPE = re.compile("[&<>\"']")


def escape_html(text: str) -> str:
    """Return PHP's htmlspecialchars(ENT_QUOTES) of a string."""
    return _HTML_ESCAPE.sub(lambda match: _HTML_ESCAPES[match[0]], text)


class _Render:
    """One render: the environment, the bounds, the output."""

    def __init__(self, environment: Environment, limits: Limits) -> None:
        self.env = environment
        self.limits = limits
        self.autoescape: str | bool = environment.autoescape

    def charge(self, operations: int = 1) -> None:
        self.limits.charge(operations)

    def check_size(self, value: Any) -> Any:
        if isinstance(value, str | list | dict) and len(value) > self.limits.max_size:
            raise LimitError(f"a value of {len(value)} characters or elements exceeds {self.limits.max_size}")
        return value

    def run(self, body: list[Node], context: dict[str, Any]) -> str:
        output = _Output(self.limits.max_output)
        self.execute(body, context, output)
        return output.value()

    def capture(self, body: list[Node], context: dict[str, Any]) -> str:
        output = _Output(self.limits.max_output)
        self.execute(body, context, output)
        return output.value()

    # -- statements
    def execute(self, body: list[Node], context: dict[str, Any], output: _Output) -> None:
        for node in body:
            try:
                getattr(self, f"do_{node.kind}")(node, context, output)
            except TwigError as exc:
                if not exc.line:
                    exc.line = node.line
                raise

    def do_text(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        output.write(node.text)

    def do_print(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        value = self.evaluate(node.expr, context)
        self.charge()
        output.write(self.printable(value, node.expr))

    def printable(self, value: Any, expression: Node | None) -> str:
        text = php.to_string(value)
        if self.autoescape and not isinstance(value, php.Markup) and not self.is_safe(expression):
            from syncapp.twig import library

            return library.escape(text, str(self.autoescape) if self.autoescape is not True else "html")
        return text

    def is_safe(self, node: Node | None) -> bool:
        """Return whether an expression's value is safe for output without escaping (Twig's safe analysis)."""
        if node is None:
            return False
        if node.kind == "const":
            return True
        if node.kind == "cond":
            then = node.then if node.then is not None else node.test
            return self.is_safe(then) and self.is_safe(node.otherwise)
        if node.kind == "filter":
            return node.name in self.env.safe_filters
        return False

    def do_if(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        for condition, body in node.branches:
            if php.to_bool(self.evaluate(condition, context)):
                self.execute(body, context, output)
                return
        self.execute(node.otherwise, context, output)

    def do_for(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        sequence = self.evaluate(node.seq, context)
        parent = dict(context)
        pairs = php.items(sequence) if php.is_array(sequence) else []
        length = len(pairs)
        context["_parent"] = parent
        for index, (key, value) in enumerate(pairs):
            self.charge()
            context[node.key] = key
            context[node.value] = value
            context["loop"] = {
                "parent": parent,
                "index0": index,
                "index": index + 1,
                "first": index == 0,
                "revindex0": length - index - 1,
                "revindex": length - index,
                "length": length,
                "last": index == length - 1,
            }
            self.execute(node.body, context, output)
        if not pairs:
            self.execute(node.otherwise, context, output)
        # As Twig: variables the loop set that existed before keep their new value; the rest go.
        for name in (node.key, node.value, "_parent", "loop"):
            context.pop(name, None)
        for name in list(context):
            if name not in parent:
                del context[name]
        for name, value in parent.items():
            context.setdefault(name, value)

    def do_set(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        if node.capture is not None:
            text = self.capture(node.capture, context)
            context[node.names[0]] = php.Markup(text) if text else ""
            return
        values = [self.evaluate(value, context) for value in node.values]
        for name, value in zip(node.names, values, strict=True):
            context[name] = value

    def do_apply(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        text: Any = self.capture(node.body, context)
        value: Any = php.Markup(text) if text else ""
        for call in node.filters:
            value = self.apply_filter(call.name, value, call.args, context, call.line)
        last = node.filters[-1]
        safe = last.name in self.env.safe_filters
        output.write(php.to_string(value) if safe else self.printable(value, None))

    def do_with(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        variables: Any = {}
        if node.variables is not None:
            variables = self.evaluate(node.variables, context)
            if not php.is_array(variables):
                raise TwigRuntimeError('Variables passed to the "with" tag must be a mapping.', node.line)
        inner = dict(self.env.globals) if node.only else dict(context)
        inner.update({str(key): value for key, value in php.items(variables)})
        self.execute(node.body, inner, output)

    def do_autoescape(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        previous = self.autoescape
        self.autoescape = node.strategy
        try:
            self.execute(node.body, context, output)
        finally:
            self.autoescape = previous

    def do_do(self, node: Node, context: dict[str, Any], output: _Output) -> None:
        self.evaluate(node.expr, context)

    # -- expressions
    def evaluate(self, node: Node, context: dict[str, Any]) -> Any:
        return getattr(self, f"ev_{node.kind}")(node, context)

    def ev_const(self, node: Node, context: dict[str, Any]) -> Any:
        return node.value

    def ev_name(self, node: Node, context: dict[str, Any]) -> Any:
        if node.name == "_context":
            return context
        value = context.get(node.name, _MISSING)
        if value is _MISSING:
            if self.env.strict_variables:
                raise TwigRuntimeError(f'Variable "{node.name}" does not exist.', node.line)
            return None
        return value

    def ev_array(self, node: Node, context: dict[str, Any]) -> Any:
        result: dict[Any, Any] = {}
        for key, value_node, spread in node.items:
            self.charge()
            value = self.evaluate(value_node, context)
            if spread:
                if not php.is_array(value):
                    raise TwigRuntimeError("The spread operator only applies to arrays.", node.line)
                for inner_key, inner_value in php.items(value):
                    if isinstance(inner_key, int):
                        result[php.next_index(result)] = inner_value
                    else:
                        result[inner_key] = inner_value
                continue
            if key is None:
                result[php.next_index(result)] = value
            else:
                result[php.php_key(self.evaluate(key, context))] = value
        return self.check_size(php.normalise(result))

    def ev_unary(self, node: Node, context: dict[str, Any]) -> Any:
        value = self.evaluate(node.node, context)
        self.charge()
        if node.op == "not":
            return not php.to_bool(value)
        number = php.to_number(value, strict=True)
        return -number if node.op == "-" else number

    def ev_coalesce(self, node: Node, context: dict[str, Any]) -> Any:
        value = self.lookup(node.left, context)
        if value is _MISSING or value is None:
            return self.evaluate(node.right, context)
        return value

    def ev_cond(self, node: Node, context: dict[str, Any]) -> Any:
        test = self.evaluate(node.test, context)
        if node.then is None:
            return test if php.to_bool(test) else self.evaluate(node.otherwise, context)
        return self.evaluate(node.then if php.to_bool(test) else node.otherwise, context)

    def ev_arrow(self, node: Node, context: dict[str, Any]) -> Any:
        return Arrow(node.params, node.body, context, self)

    def lookup(self, node: Node, context: dict[str, Any]) -> Any:
        """Return a variable's or attribute's value, or _MISSING when it is not defined."""
        if node.kind == "name":
            if node.name == "_context":
                return context
            return context.get(node.name, _MISSING)
        if node.kind == "getattr":
            container = self.lookup(node.node, context)
            if container is _MISSING:
                return _MISSING
            return self.attribute(container, self.evaluate(node.attribute, context), node.type, missing=_MISSING)
        return self.evaluate(node, context)

    def ev_getattr(self, node: Node, context: dict[str, Any]) -> Any:
        container = self.evaluate(node.node, context)
        attribute = self.evaluate(node.attribute, context)
        value = self.attribute(container, attribute, node.type, missing=_MISSING)
        if value is _MISSING:
            if self.env.strict_variables:
                raise TwigRuntimeError(_missing_attribute(container, attribute), node.line)
            return None
        return value

    def attribute(self, container: Any, attribute: Any, type_: str, *, missing: Any) -> Any:
        """Return ``container.attribute`` as Twig's getAttribute does for arrays (objects are not supported)."""
        self.charge()
        if type_ == "method":
            return missing
        if isinstance(container, dict):
            key = (
                php.php_key(attribute) if isinstance(attribute, str | int | float | bool) or attribute is None else None
            )
            if key is None:
                return missing
            if key in container:
                return container[key]
            text = str(key)
            if text in container:
                return container[text]
            return missing
        if isinstance(container, list):
            if isinstance(attribute, bool):
                attribute = int(attribute)
            if isinstance(attribute, float):
                attribute = int(attribute)
            if isinstance(attribute, str):
                key = php.php_key(attribute)
                if not isinstance(key, int):
                    return missing
                attribute = key
            if isinstance(attribute, int) and 0 <= attribute < len(container):
                return container[attribute]
            return missing
        return missing

    def ev_binary(self, node: Node, context: dict[str, Any]) -> Any:
        operator = node.op
        if operator == "and":
            return php.to_bool(self.evaluate(node.left, context)) and php.to_bool(self.evaluate(node.right, context))
        if operator == "or":
            return php.to_bool(self.evaluate(node.left, context)) or php.to_bool(self.evaluate(node.right, context))
        from syncapp.twig import library

        left_node = node.left
        if (
            operator == "**"
            and left_node.kind == "unary"
            and left_node.op != "not"
            and not left_node.fields.get("parens")
        ):
            # Twig compiles "-a ** b" to PHP's "-$a ** $b", which PHP reads as -($a ** $b).
            power = library.binary(
                self, "**", self.evaluate(left_node.node, context), self.evaluate(node.right, context)
            )
            self.charge()
            return -php.to_number(power) if left_node.op == "-" else php.to_number(power)
        left = self.evaluate(left_node, context)
        if operator in ("starts with", "ends with") and not isinstance(left, str):
            return False  # Twig tests the left side first and leaves the right one unevaluated
        right = self.evaluate(node.right, context)
        self.charge()
        return library.binary(self, operator, left, right)

    def ev_test(self, node: Node, context: dict[str, Any]) -> Any:
        if node.name == "defined":
            return self.lookup(node.node, context) is not _MISSING
        value = self.evaluate(node.node, context)
        args, kwargs = self.arguments(node.args, context)
        self.charge()
        return self.env.tests[node.name](value, *args, **kwargs)

    def ev_function(self, node: Node, context: dict[str, Any]) -> Any:
        args, kwargs = self.arguments(node.args, context)
        self.charge()
        function = self.env.functions[node.name]
        try:
            result = function(self, *args, **kwargs)
        except TypeError as exc:
            raise TwigRuntimeError(f'Function "{node.name}": {_argument_problem(exc)}', node.line) from exc
        return self.check_size(result)

    def ev_filter(self, node: Node, context: dict[str, Any]) -> Any:
        if node.name == "default":
            value = self.lookup(node.node, context)
            args, _ = self.arguments(node.args, context)
            fallback = args[0] if args else ""
            if value is _MISSING:
                return fallback
            from syncapp.twig import library

            return fallback if library.is_empty(value) else value
        value = self.evaluate(node.node, context)
        pre_escape = node.name in PRE_ESCAPE_FILTERS and self.autoescape and isinstance(value, str)
        if pre_escape and not isinstance(value, php.Markup) and not self.is_safe(node.node):
            # Twig's pre_escape: the input of nl2br is escaped first, unless it is safe.
            value = php.Markup(escape_html(value))
        return self.apply_filter(node.name, value, node.args, context, node.line)

    def apply_filter(self, name: str, value: Any, arg_nodes: list[Any], context: dict[str, Any], line: int) -> Any:
        args, kwargs = self.arguments(arg_nodes, context)
        self.charge()
        function = self.env.filters[name]
        try:
            result = function(self, value, *args, **kwargs)
        except TypeError as exc:
            raise TwigRuntimeError(f'Filter "{name}": {_argument_problem(exc)}', line) from exc
        return self.check_size(result)

    def arguments(self, arg_nodes: list[Any], context: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, value_node, spread in arg_nodes:
            value = self.evaluate(value_node, context)
            if spread:
                for key, item in php.items(value):
                    if isinstance(key, int):
                        args.append(item)
                    else:
                        kwargs[key] = item
            elif name is None:
                args.append(value)
            else:
                kwargs[_python_name(name)] = value
        return args, kwargs

    def call(self, function: Any, *args: Any) -> Any:
        """Call an arrow function (or refuse anything else) with the given arguments."""
        self.charge()
        if isinstance(function, Arrow):
            return function(*args)
        raise TwigRuntimeError("The callable passed must be an arrow function.")


def _missing_attribute(container: Any, attribute: Any) -> str:
    """Say why an attribute is missing, as Twig's strict mode does."""
    name = php.to_string(attribute)
    if php.is_array(container):
        keys = ", ".join(php.to_string(key) for key, _ in php.items(container))
        kind = "sequence" if isinstance(container, list) else "mapping"
        if not keys:
            return f'Key "{name}" does not exist as the {kind} is empty.'
        return f'Key "{name}" for {kind} with keys "{keys}" does not exist.'
    if container is None:
        return f'Impossible to access an attribute ("{name}") on a null variable.'
    kind = php.type_name(container)
    return f'Impossible to access an attribute ("{name}") on a {kind} variable ("{php.to_string(container)}").'


def _argument_problem(exc: TypeError) -> str:
    text = str(exc)
    text = re.sub(r"^[a-z_]+\(\) ", "", text)
    return text
