"""Parse Twig tokens into a tree, with Twig 3's operator precedence and tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from syncapp.twig import lexer as t
from syncapp.twig.errors import TwigSyntaxError

__all__ = ["Node", "parse"]


@dataclass(eq=False)
class Node:
    """Hold one node of the tree: its kind, line and kind-specific fields."""

    kind: str
    line: int
    fields: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["fields"][name]
        except KeyError:
            raise AttributeError(name) from None


def _node(kind: str, line: int, **fields: Any) -> Node:
    return Node(kind, line, fields)


# Twig 3 (before 4.0's changes): precedence, and whether the operator binds to the left.
BINARY: Final = {
    "or": (10, True),
    "xor": (12, True),
    "and": (15, True),
    "b-or": (16, True),
    "b-xor": (17, True),
    "b-and": (18, True),
    "==": (20, True),
    "!=": (20, True),
    "===": (20, True),
    "!==": (20, True),
    "<=>": (20, True),
    "<": (20, True),
    ">": (20, True),
    ">=": (20, True),
    "<=": (20, True),
    "not in": (20, True),
    "in": (20, True),
    "matches": (20, True),
    "starts with": (20, True),
    "ends with": (20, True),
    "has some": (20, True),
    "has every": (20, True),
    "..": (25, True),
    "+": (30, True),
    "-": (30, True),
    "~": (40, True),
    "*": (60, True),
    "/": (60, True),
    "//": (60, True),
    "%": (60, True),
    "is": (100, True),
    "is not": (100, True),
    "**": (200, False),
    "??": (300, False),
}
UNARY: Final = {"not": 50, "-": 500, "+": 500}
# Tests whose name is two words.
_TWO_WORD_TESTS: Final = {"same": "as", "divisible": "by"}
SUPPORTED_TAGS: Final = ("apply", "autoescape", "do", "for", "if", "set", "verbatim", "with")
_END_TAGS: Final = {
    "if": ("elseif", "else", "endif"),
    "for": ("else", "endfor"),
    "set": ("endset",),
    "apply": ("endapply",),
    "with": ("endwith",),
    "autoescape": ("endautoescape",),
}


class _Parser:
    """Read a token list into a tree."""

    def __init__(self, tokens: list[t.Token]) -> None:
        self.tokens = tokens
        self.position = 0

    # -- the token stream
    @property
    def current(self) -> t.Token:
        return self.tokens[self.position]

    def look(self, offset: int = 1) -> t.Token:
        index = min(self.position + offset, len(self.tokens) - 1)
        return self.tokens[index]

    def next(self) -> t.Token:
        token = self.tokens[self.position]
        if token.type != t.EOF:
            self.position += 1
        return token

    def next_if(self, type_: str, value: str | tuple[str, ...] | None = None) -> t.Token | None:
        if self.current.test(type_, value):
            return self.next()
        return None

    def expect(self, type_: str, value: str | None = None, what: str = "") -> t.Token:
        token = self.current
        if not token.test(type_, value):
            expected = f'"{value}"' if value else type_.replace("_", " ")
            raise TwigSyntaxError(
                f"Unexpected token {_describe(token)} ({what or 'expected ' + expected}).", token.line
            )
        return self.next()

    # -- statements
    def subparse(self, end_tags: tuple[str, ...] | None) -> tuple[list[Node], str | None]:
        """Parse up to one of ``end_tags`` (left on the block's name); return the body and that tag."""
        body: list[Node] = []
        while True:
            token = self.current
            if token.type == t.EOF:
                if end_tags:
                    raise TwigSyntaxError(
                        f'Unexpected end of template (expected one of "{", ".join(end_tags)}").', token.line
                    )
                return body, None
            if token.type == t.TEXT:
                body.append(_node("text", token.line, text=token.value))
                self.next()
            elif token.type == t.VAR_START:
                self.next()
                expression = self.parse_expression()
                self.expect(t.VAR_END)
                body.append(_node("print", token.line, expr=expression))
            elif token.type == t.BLOCK_START:
                self.next()
                name = self.current
                if name.type != t.NAME:
                    raise TwigSyntaxError("A block must start with a tag name.", name.line)
                if end_tags and name.value in end_tags:
                    return body, str(name.value)
                self.next()
                body.append(self.parse_tag(name))
            else:
                raise TwigSyntaxError(f"Unexpected token {_describe(token)}.", token.line)

    def parse_tag(self, name: t.Token) -> Node:
        tag = str(name.value)
        handler = getattr(self, f"tag_{tag}", None)
        if handler is None:
            if any(tag in ends for ends in _END_TAGS.values()):
                raise TwigSyntaxError(f'Unexpected "{tag}" tag.', name.line)
            raise TwigSyntaxError(f'Unknown "{tag}" tag.', name.line)
        return handler(name.line)

    def end_block(self) -> None:
        self.expect(t.BLOCK_END)

    def tag_if(self, line: int) -> Node:
        branches = []
        condition = self.parse_expression()
        self.end_block()
        body, end = self.subparse(_END_TAGS["if"])
        branches.append((condition, body))
        otherwise: list[Node] = []
        while True:
            self.next()
            if end == "else":
                self.end_block()
                otherwise, end = self.subparse(("endif",))
            elif end == "elseif":
                condition = self.parse_expression()
                self.end_block()
                body, end = self.subparse(_END_TAGS["if"])
                branches.append((condition, body))
            else:
                self.end_block()
                break
        return _node("if", line, branches=branches, otherwise=otherwise)

    def parse_assignment_targets(self) -> list[str]:
        targets = []
        while True:
            token = self.current
            if token.type == t.OPERATOR and str(token.value).isalpha():
                # Twig allows word operators as names: {% set matches = 1 %}.
                token = t.Token(t.NAME, token.value, token.line)
                self.next()
            else:
                token = self.expect(t.NAME, what="only variables can be assigned to")
            if token.value in ("true", "false", "none", "null", "_self", "_context", "_charset"):
                raise TwigSyntaxError(f'You cannot assign a value to "{token.value}".', token.line)
            targets.append(str(token.value))
            if not self.next_if(t.PUNCTUATION, ","):
                return targets

    def tag_for(self, line: int) -> Node:
        targets = self.parse_assignment_targets()
        self.expect(t.OPERATOR, "in")
        sequence = self.parse_expression()
        self.end_block()
        body, end = self.subparse(_END_TAGS["for"])
        otherwise: list[Node] = []
        self.next()
        if end == "else":
            self.end_block()
            otherwise, end = self.subparse(("endfor",))
            self.next()
        self.end_block()
        key, value = (targets[0], targets[1]) if len(targets) > 1 else ("_key", targets[0])
        return _node("for", line, key=key, value=value, seq=sequence, body=body, otherwise=otherwise)

    def tag_set(self, line: int) -> Node:
        names = self.parse_assignment_targets()
        if self.next_if(t.OPERATOR, "="):
            values = self.parse_multitarget_expressions()
            self.end_block()
            if len(names) != len(values):
                raise TwigSyntaxError(
                    "When using set, you must have the same number of variables and assignments.", line
                )
            return _node("set", line, names=names, values=values, capture=None)
        if len(names) > 1:
            raise TwigSyntaxError("When using set with a block, you cannot have a multi-target.", line)
        self.end_block()
        body, _ = self.subparse(("endset",))
        self.next()
        self.end_block()
        return _node("set", line, names=names, values=None, capture=body)

    def parse_multitarget_expressions(self) -> list[Node]:
        values = [self.parse_expression()]
        while self.next_if(t.PUNCTUATION, ","):
            values.append(self.parse_expression())
        return values

    def tag_apply(self, line: int) -> Node:
        filters = []
        while True:
            filters.append(self.parse_filter_call(line))
            if not self.next_if(t.PUNCTUATION, "|"):
                break
        self.end_block()
        body, _ = self.subparse(("endapply",))
        self.next()
        self.end_block()
        return _node("apply", line, filters=filters, body=body)

    def tag_with(self, line: int) -> Node:
        variables = None
        only = False
        if not self.current.test(t.BLOCK_END):
            if not self.current.test(t.NAME, "only"):
                variables = self.parse_expression()
            if self.next_if(t.NAME, "only"):
                only = True
        self.end_block()
        body, _ = self.subparse(("endwith",))
        self.next()
        self.end_block()
        return _node("with", line, variables=variables, only=only, body=body)

    def tag_autoescape(self, line: int) -> Node:
        strategy: Any = "html"
        if not self.current.test(t.BLOCK_END):
            expression = self.parse_expression()
            if expression.kind != "const" or not isinstance(expression.value, str | bool):
                raise TwigSyntaxError("An escaping strategy must be a string or false.", line)
            strategy = expression.value
            if strategy is True:
                strategy = "html"
        self.end_block()
        body, _ = self.subparse(("endautoescape",))
        self.next()
        self.end_block()
        return _node("autoescape", line, strategy=strategy, body=body)

    def tag_do(self, line: int) -> Node:
        expression = self.parse_expression()
        self.end_block()
        return _node("do", line, expr=expression)

    # -- expressions
    def parse_expression(self, precedence: int = 0, allow_arrow: bool = False) -> Node:
        if allow_arrow:
            arrow = self.parse_arrow()
            if arrow is not None:
                return arrow
        expression = self.parse_primary()
        while True:
            token = self.current
            if token.type != t.OPERATOR or token.value not in BINARY:
                break
            op_precedence, left = BINARY[str(token.value)]
            if op_precedence < precedence:
                break
            self.next()
            if token.value in ("is", "is not"):
                expression = self.parse_test(expression, negated=token.value == "is not", line=token.line)
                continue
            right = self.parse_expression(op_precedence + 1 if left else op_precedence, allow_arrow=True)
            if token.value == "??":
                _check_definable(expression, token.line)
                expression = _node("coalesce", token.line, left=expression, right=right)
            else:
                expression = _node("binary", token.line, op=token.value, left=expression, right=right)
        if precedence == 0:
            expression = self.parse_conditional(expression)
        return expression

    def parse_conditional(self, expression: Node) -> Node:
        while True:
            question = self.next_if(t.PUNCTUATION, "?")
            if question is None:
                return expression
            if self.next_if(t.PUNCTUATION, ":"):
                expression = _node("cond", question.line, test=expression, then=None, otherwise=self.parse_expression())
                continue
            then = self.parse_expression()
            if self.next_if(t.PUNCTUATION, ":"):
                otherwise = self.parse_expression()
            else:
                otherwise = _node("const", question.line, value="")
            expression = _node("cond", question.line, test=expression, then=then, otherwise=otherwise)

    def parse_arrow(self) -> Node | None:
        token = self.current
        if token.type == t.NAME and self.look().type == t.ARROW:
            self.next()
            arrow = self.next()
            _check_parameters([str(token.value)], token.line)
            return _node("arrow", arrow.line, params=[str(token.value)], body=self.parse_expression())
        if not token.test(t.PUNCTUATION, "("):
            return None
        params = []
        offset = 1
        while True:
            name = self.look(offset)
            if name.test(t.PUNCTUATION, ")") and offset == 1:
                break
            if name.type != t.NAME:
                return None
            params.append(str(name.value))
            separator = self.look(offset + 1)
            offset += 2
            if separator.test(t.PUNCTUATION, ")"):
                break
            if not separator.test(t.PUNCTUATION, ","):
                return None
        if not params or self.look(offset).type != t.ARROW:
            return None
        self.position += offset
        arrow = self.next()
        _check_parameters(params, arrow.line)
        return _node("arrow", arrow.line, params=params, body=self.parse_expression())

    def parse_primary(self) -> Node:
        token = self.current
        if token.type == t.OPERATOR and token.value in UNARY:
            self.next()
            operand = self.parse_expression(UNARY[str(token.value)])
            return self.parse_postfix(_node("unary", token.line, op=token.value, node=operand))
        if token.test(t.PUNCTUATION, "("):
            self.next()
            expression = self.parse_expression(allow_arrow=True)
            if expression.kind == "arrow":
                raise TwigSyntaxError("An arrow function cannot be used here.", token.line)
            self.expect(t.PUNCTUATION, ")", what="an opened parenthesis is not properly closed")
            expression.fields["parens"] = True
            return self.parse_postfix(expression)
        return self.parse_primary_expression()

    def parse_primary_expression(self) -> Node:
        token = self.current
        if token.type == t.NAME:
            self.next()
            name = str(token.value)
            lowered = name.lower()
            constants = {"true": True, "false": False, "none": None, "null": None}
            if lowered in constants and name in (lowered, lowered.upper()):
                node = _node("const", token.line, value=constants[lowered])
            elif self.current.test(t.PUNCTUATION, "("):
                node = _node("function", token.line, name=name, args=self.parse_arguments())
            else:
                node = _node("name", token.line, name=name)
        elif token.type == t.NUMBER:
            self.next()
            node = _node("const", token.line, value=token.value)
        elif token.type in (t.STRING, t.INTERPOLATION_START):
            node = self.parse_string()
        elif token.test(t.PUNCTUATION, "["):
            node = self.parse_sequence()
        elif token.test(t.PUNCTUATION, "{"):
            node = self.parse_mapping()
        elif token.type == t.OPERATOR and str(token.value).isalpha():
            # Twig allows word operators as variable names: {{ matches }}.
            self.next()
            node = _node("name", token.line, name=str(token.value))
        else:
            raise TwigSyntaxError(f"Unexpected token {_describe(token)}.", token.line)
        return self.parse_postfix(node)

    def parse_string(self) -> Node:
        parts: list[Node] = []
        next_can_be_string = True
        while True:
            token = self.current
            if next_can_be_string and token.type == t.STRING:
                self.next()
                parts.append(_node("const", token.line, value=token.value))
                next_can_be_string = False
            elif token.type == t.INTERPOLATION_START:
                self.next()
                parts.append(self.parse_expression())
                self.expect(t.INTERPOLATION_END)
                next_can_be_string = True
            else:
                break
        node = parts[0]
        for part in parts[1:]:
            node = _node("binary", part.line, op="~", left=node, right=part)
        return node

    def parse_sequence(self) -> Node:
        start = self.expect(t.PUNCTUATION, "[")
        items: list[tuple[Node | None, Node, bool]] = []
        first = True
        while not self.current.test(t.PUNCTUATION, "]"):
            if not first:
                self.expect(t.PUNCTUATION, ",", what="a sequence element must be followed by a comma")
                if self.current.test(t.PUNCTUATION, "]"):
                    break
            first = False
            spread = bool(self.next_if(t.SPREAD))
            items.append((None, self.parse_expression(), spread))
        self.expect(t.PUNCTUATION, "]", what="an opened sequence is not properly closed")
        return _node("array", start.line, items=items)

    def parse_mapping(self) -> Node:
        start = self.expect(t.PUNCTUATION, "{")
        items: list[tuple[Node | None, Node, bool]] = []
        first = True
        while not self.current.test(t.PUNCTUATION, "}"):
            if not first:
                self.expect(t.PUNCTUATION, ",", what="a mapping value must be followed by a comma")
                if self.current.test(t.PUNCTUATION, "}"):
                    break
            first = False
            if self.next_if(t.SPREAD):
                items.append((None, self.parse_expression(), True))
                continue
            token = self.current
            if token.type in (t.STRING, t.NAME, t.NUMBER):
                self.next()
                key = _node("const", token.line, value=token.value)
                if token.type == t.NAME and self.current.test(t.PUNCTUATION, (",", "}")):
                    # {a} is {a: a}
                    items.append((key, _node("name", token.line, name=token.value), False))
                    continue
            elif token.test(t.PUNCTUATION, "("):
                key = self.parse_expression()
            else:
                raise TwigSyntaxError(
                    f"A mapping key must be a quoted string, a number, a name, or an expression enclosed "
                    f"in parentheses (unexpected token {_describe(token)}).",
                    token.line,
                )
            self.expect(t.PUNCTUATION, ":", what="a mapping key must be followed by a colon (:)")
            items.append((key, self.parse_expression(), False))
        self.expect(t.PUNCTUATION, "}", what="an opened mapping is not properly closed")
        return _node("array", start.line, items=items)

    def parse_postfix(self, node: Node) -> Node:
        while True:
            token = self.current
            if token.test(t.PUNCTUATION, "."):
                node = self.parse_dot(node)
            elif token.test(t.PUNCTUATION, "["):
                node = self.parse_subscript(node)
            elif token.test(t.PUNCTUATION, "|"):
                self.next()
                call = self.parse_filter_call(token.line)
                node = _node("filter", token.line, node=node, name=call.name, args=call.args)
            else:
                return node

    def parse_dot(self, node: Node) -> Node:
        dot = self.next()
        token = self.next()
        if token.type == t.NAME or token.type == t.OPERATOR and str(token.value).isalpha():
            attribute = _node("const", token.line, value=str(token.value))
        elif token.type == t.NUMBER:
            attribute = _node("const", token.line, value=token.value)
        elif token.type == t.PUNCTUATION and token.value == "(":
            raise TwigSyntaxError("Dynamic attributes are not supported.", token.line)
        else:
            raise TwigSyntaxError(f"Expected name or number, got {_describe(token)}.", token.line)
        args = None
        if self.current.test(t.PUNCTUATION, "("):
            args = self.parse_arguments()
        return _node(
            "getattr",
            dot.line,
            node=node,
            attribute=attribute,
            type="method" if args is not None else "any",
            args=args or [],
        )

    def parse_subscript(self, node: Node) -> Node:
        bracket = self.next()
        if self.current.test(t.PUNCTUATION, ":"):
            start = _node("const", bracket.line, value=0)
        else:
            start = self.parse_expression()
        if self.next_if(t.PUNCTUATION, ":"):
            length = None if self.current.test(t.PUNCTUATION, "]") else self.parse_expression()
            self.expect(t.PUNCTUATION, "]")
            args = [(None, start, False)]
            if length is not None:
                args.append((None, length, False))
            return _node("filter", bracket.line, node=node, name="slice", args=args)
        self.expect(t.PUNCTUATION, "]")
        return _node("getattr", bracket.line, node=node, attribute=start, type="array", args=[])

    def parse_filter_call(self, line: int) -> Node:
        name = self.expect(t.NAME, what="a filter name")
        args = self.parse_arguments() if self.current.test(t.PUNCTUATION, "(") else []
        return _node("filtercall", name.line, name=str(name.value), args=args)

    def parse_arguments(self) -> list[tuple[str | None, Node, bool]]:
        self.expect(t.PUNCTUATION, "(", what="a list of arguments must begin with an opening parenthesis")
        args: list[tuple[str | None, Node, bool]] = []
        while not self.current.test(t.PUNCTUATION, ")"):
            if args:
                self.expect(t.PUNCTUATION, ",", what="arguments must be separated by a comma")
                if self.current.test(t.PUNCTUATION, ")"):
                    break
            if self.next_if(t.SPREAD):
                args.append((None, self.parse_expression(), True))
                continue
            if any(spread for _, _, spread in args):
                raise TwigSyntaxError("Normal arguments must be placed before argument unpacking.", self.current.line)
            name = None
            if self.current.type == t.NAME and (
                self.look().test(t.OPERATOR, "=") or self.look().test(t.PUNCTUATION, ":")
            ):
                name = str(self.next().value)
                self.next()
            value = self.parse_expression(allow_arrow=True)
            if name is None and any(existing is not None for existing, _, _ in args):
                raise TwigSyntaxError("Positional arguments cannot be used after named arguments.", value.line)
            if name is not None and any(existing == name for existing, _, _ in args):
                raise TwigSyntaxError(f'Argument "{name}" is defined twice.', value.line)
            args.append((name, value, False))
        self.expect(t.PUNCTUATION, ")", what="a list of arguments must be closed by a parenthesis")
        return args

    def parse_test(self, node: Node, *, negated: bool, line: int) -> Node:
        token = self.expect(t.NAME, what="a test name")
        name = str(token.value)
        second = _TWO_WORD_TESTS.get(name)
        if second is not None and self.current.test(t.NAME, second):
            self.next()
            name = f"{name} {second}"
        elif self.current.type == t.NAME and f"{name} {self.current.value}" in ("same as", "divisible by"):
            self.next()
        args: list[tuple[str | None, Node, bool]] = []
        if self.current.test(t.PUNCTUATION, "("):
            args = self.parse_arguments()
        elif name in ("same as", "divisible by"):
            # "is same as x" without parentheses takes one primary expression.
            args = [(None, self.parse_primary(), False)]
        if name == "defined":
            _check_definable(node, line)
        test = _node("test", line, name=name, node=node, args=args)
        if negated:
            return _node("unary", line, op="not", node=test)
        return test


def _check_definable(node: Node, line: int) -> None:
    """Refuse what Twig's defined test (and so ??) cannot look at: anything but a variable, an attribute, a
    literal or constant()."""
    simple = node.kind in ("name", "getattr", "const", "array") or (
        node.kind == "function" and node.name == "constant"
    )
    if not simple:
        raise TwigSyntaxError('The "defined" test only works with simple variables.', line)


def _check_parameters(names: list[str], line: int) -> None:
    for name in names:
        if name.lower() in ("true", "false", "none", "null"):
            raise TwigSyntaxError(f'You cannot assign a value to "{name}".', line)


def _describe(token: t.Token) -> str:
    """Name a token for an error message as Twig does."""
    names = {
        t.EOF: "end of template",
        t.TEXT: "text",
        t.BLOCK_START: "begin of statement block",
        t.BLOCK_END: "end of statement block",
        t.VAR_START: "begin of print statement",
        t.VAR_END: "end of print statement",
        t.NAME: "name",
        t.NUMBER: "number",
        t.STRING: "string",
        t.OPERATOR: "operator",
        t.PUNCTUATION: "punctuation",
        t.ARROW: "arrow function",
        t.INTERPOLATION_START: "begin of string interpolation",
        t.INTERPOLATION_END: "end of string interpolation",
        t.SPREAD: "spread operator",
    }
    name = names.get(token.type, token.type)
    if token.type in (t.EOF, t.BLOCK_END, t.VAR_END, t.BLOCK_START, t.VAR_START):
        return f'"{name}"'
    return f'"{name}" of value "{token.value}"'


def parse(source: str) -> list[Node]:
    """Return the tree of a template; raise TwigSyntaxError with the line of the problem."""
    parser = _Parser(t.tokenize(source))
    body, _ = parser.subparse(None)
    return body
