"""Split a Twig template into tokens, as Twig 3's lexer does (whitespace control included)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from syncapp.twig.errors import TwigSyntaxError

__all__ = ["Token", "tokenize"]

# Token types.
TEXT: Final = "text"
BLOCK_START: Final = "block_start"
BLOCK_END: Final = "block_end"
VAR_START: Final = "var_start"
VAR_END: Final = "var_end"
NAME: Final = "name"
NUMBER: Final = "number"
STRING: Final = "string"
OPERATOR: Final = "operator"
PUNCTUATION: Final = "punctuation"
INTERPOLATION_START: Final = "interpolation_start"
INTERPOLATION_END: Final = "interpolation_end"
ARROW: Final = "arrow"
SPREAD: Final = "spread"
EOF: Final = "eof"


@dataclass(frozen=True)
class Token:
    """Hold one token: its type, value and line."""

    type: str
    value: str | int | float
    line: int

    def test(self, type_: str, value: str | tuple[str, ...] | None = None) -> bool:
        """Return whether the token has this type and (one of) these values."""
        if self.type != type_:
            return False
        if value is None:
            return True
        return self.value in value if isinstance(value, tuple) else self.value == value


# Operators Twig knows, longest first so that "not in" wins over "not" and "**" over "*".
OPERATORS: Final = (
    "starts with",
    "ends with",
    "has some",
    "has every",
    "is not",
    "not in",
    "matches",
    "b-and",
    "b-xor",
    "b-or",
    "and",
    "xor",
    "not",
    "or",
    "in",
    "is",
    "===",
    "!==",
    "<=>",
    "??",
    "**",
    "//",
    "==",
    "!=",
    ">=",
    "<=",
    "..",
    "+",
    "-",
    "~",
    "*",
    "/",
    "%",
    "<",
    ">",
    "=",
)


def _operator_regex() -> re.Pattern[str]:
    """Build the operator pattern: word operators end at a word boundary, inner spaces are any whitespace."""
    parts = []
    for operator in sorted(OPERATORS, key=len, reverse=True):
        pattern = re.escape(operator).replace(r"\ ", r"\s+")
        if operator[-1].isalpha():
            # As Twig: "in" must not match the start of "index"; "not" may be followed by "(".
            pattern += r"(?=[\s()\[{])"
        if operator[0].isalpha():
            # ... and "foo.not" or "x|in" is a name, not an operator.
            pattern = r"(?<![.|])" + pattern
        parts.append(pattern)
    return re.compile("|".join(parts))


_OPERATOR = _operator_regex()
_NAME = re.compile(r"[a-zA-Z_\x7f-\U0010ffff][a-zA-Z0-9_\x7f-\U0010ffff]*")
_NUMBER = re.compile(r"[0-9]+(?:_[0-9]+)*(?:\.[0-9]+(?:_[0-9]+)*)?(?:[Ee][+\-]?[0-9]+(?:_[0-9]+)*)?")
_STRING = re.compile(r""""([^#"\\]*(?:\\.[^#"\\]*)*)"|'([^'\\]*(?:\\.[^'\\]*)*)'""", re.S)
_DQ_PART = re.compile(r"""[^#"\\]*(?:(?:\\.|#(?!\{))[^#"\\]*)*""", re.S)
_TOKENS_START = re.compile(r"(\{\{|\{%|\{#)(-|~)?")
_BLOCK_END = re.compile(r"\s*(?:-%\}\s*\n?|~%\}[ \t\0\x0b]*|%\}\n?)")
_VAR_END = re.compile(r"\s*(?:-\}\}\s*|~\}\}[ \t\0\x0b]*|\}\})")
_COMMENT_END = re.compile(r"(?:-#\}\s*\n?|~#\}[ \t\0\x0b]*|#\}\n?)")
_RAW_START = re.compile(r"\s*verbatim\s*(?:-%\}\s*|~%\}[ \t\0\x0b]*|%\})")
_RAW_END = re.compile(r"\{%(-|~)?\s*endverbatim\s*(?:-%\}\s*|~%\}[ \t\0\x0b]*|%\})", re.S)
_WHITESPACE = re.compile(r"\s+")
_INLINE_COMMENT = re.compile(r"#[^\n]*")
_PUNCTUATION: Final = "()[]{}?:.,|"
_SPECIAL_CHARS: Final = {"f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_LINE_TRIM_CHARS: Final = " \t\0\x0b"
# PHP's \s: space, \t, \n, \v, \f, \r (and \0 for rtrim's default list).
_TRIM_CHARS: Final = " \t\n\r\0\x0b\f"


def unescape(text: str, quote: str) -> str:
    """Resolve backslash escapes in a string literal the way Twig 3's lexer does (an unknown ``\\X`` is ``X``)."""
    result: list[str] = []
    index = 0
    length = len(text)
    while index < length:
        position = text.find("\\", index)
        if position < 0:
            result.append(text[index:])
            break
        result.append(text[index:position])
        index = position + 1
        if index >= length:
            result.append("\\")
            break
        char = text[index]
        if char in _SPECIAL_CHARS:
            result.append(_SPECIAL_CHARS[char])
        elif char == "#" and index + 1 < length and text[index + 1] == "{":
            result.append("#{")
            index += 1
        elif char == "x" and index + 1 < length and text[index + 1] in "0123456789abcdefABCDEF":
            digits = text[index + 1 : index + 3]
            digits = digits if len(digits) == 2 and digits[1] in "0123456789abcdefABCDEF" else digits[:1]
            result.append(chr(int(digits, 16)))
            index += len(digits)
        elif char in "01234567":
            digits = char
            while index + 1 < length and text[index + 1] in "01234567" and len(digits) < 3:
                index += 1
                digits += text[index]
            result.append(chr(int(digits, 8) & 0xFF))
        else:
            # \\, \', \" and every unknown escape: the character itself.
            result.append(char)
        index += 1
    return "".join(result)


class _Lexer:
    """Turn template source into a list of tokens."""

    def __init__(self, source: str) -> None:
        self.code = source.replace("\r\n", "\n").replace("\r", "\n")
        self.cursor = 0
        self.line = 1
        self.tokens: list[Token] = []
        self.brackets: list[tuple[str, int]] = []

    def push(self, type_: str, value: str | int | float = "") -> None:
        self.tokens.append(Token(type_, value, self.line))

    def move(self, text: str) -> None:
        self.cursor += len(text)
        self.line += text.count("\n")

    def run(self) -> list[Token]:
        code = self.code
        while self.cursor < len(code):
            match = _TOKENS_START.search(code, self.cursor)
            if match is None:
                self.push(TEXT, code[self.cursor :])
                self.move(code[self.cursor :])
                break
            text = code[self.cursor : match.start()]
            if match[2] == "-":
                text = text.rstrip(_TRIM_CHARS)
            elif match[2] == "~":
                text = text.rstrip(_LINE_TRIM_CHARS)
            if text:
                self.push(TEXT, text)
            self.move(code[self.cursor : match.end()])
            opener = match[1]
            if opener == "{#":
                self.lex_comment()
            elif opener == "{%":
                raw = _RAW_START.match(code, self.cursor)
                if raw is not None:
                    self.move(raw[0])
                    self.lex_raw()
                else:
                    self.push(BLOCK_START)
                    self.lex_expression(_BLOCK_END, BLOCK_END)
            else:
                self.push(VAR_START)
                self.lex_expression(_VAR_END, VAR_END)
        self.push(EOF)
        return self.tokens

    def lex_comment(self) -> None:
        match = _COMMENT_END.search(self.code, self.cursor)
        if match is None:
            raise TwigSyntaxError("Unclosed comment.", self.line)
        self.move(self.code[self.cursor : match.end()])

    def lex_raw(self) -> None:
        match = _RAW_END.search(self.code, self.cursor)
        if match is None:
            raise TwigSyntaxError('Unexpected end of file: Unclosed "verbatim" block.', self.line)
        text = self.code[self.cursor : match.start()]
        if match[1] == "-":
            text = text.rstrip(_TRIM_CHARS)
        elif match[1] == "~":
            text = text.rstrip(_LINE_TRIM_CHARS)
        self.push(TEXT, text)
        self.move(self.code[self.cursor : match.end()])

    def lex_expression(self, end: re.Pattern[str], end_type: str) -> None:
        """Read tokens up to the tag's end."""
        code = self.code
        while True:
            if not self.brackets:
                match = end.match(code, self.cursor)
                if match is not None:
                    self.push(end_type)
                    self.move(match[0])
                    return
            if self.cursor >= len(code):
                what = "block" if end_type == BLOCK_END else "variable"
                raise TwigSyntaxError(f'Unclosed "{what}".', self.line)
            self.lex_token(code)

    def lex_token(self, code: str) -> None:
        """Read one token of an expression."""
        space = _WHITESPACE.match(code, self.cursor)
        if space is not None:
            self.move(space[0])
            if self.cursor >= len(code):
                return
            return
        if code.startswith("=>", self.cursor):
            self.push(ARROW, "=>")
            self.move("=>")
            return
        if code.startswith("...", self.cursor):
            self.push(SPREAD, "...")
            self.move("...")
            return
        operator = _OPERATOR.match(code, self.cursor)
        if operator is not None and not (operator[0] == "=" and code.startswith("==", self.cursor)):
            self.push(OPERATOR, re.sub(r"\s+", " ", operator[0]))
            self.move(operator[0])
            return
        name = _NAME.match(code, self.cursor)
        if name is not None:
            self.push(NAME, name[0])
            self.move(name[0])
            return
        number = _NUMBER.match(code, self.cursor)
        if number is not None:
            text = number[0].replace("_", "")
            value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
            if isinstance(value, int) and value > 2**63 - 1:
                value = float(value)
            self.push(NUMBER, value)
            self.move(number[0])
            return
        char = code[self.cursor]
        if char == "#" and not self.brackets or char == "#" and code[self.cursor + 1 : self.cursor + 2] != "{":
            comment = _INLINE_COMMENT.match(code, self.cursor)
            assert comment is not None
            self.move(comment[0])
            return
        if char in _PUNCTUATION:
            if char in "([{":
                self.brackets.append((char, self.line))
            elif char in ")]}":
                if not self.brackets:
                    raise TwigSyntaxError(f'Unexpected "{char}".', self.line)
                opening, line = self.brackets.pop()
                if {"(": ")", "[": "]", "{": "}"}[opening] != char:
                    raise TwigSyntaxError(f'Unclosed "{opening}".', line)
            self.push(PUNCTUATION, char)
            self.move(char)
            return
        string = _STRING.match(code, self.cursor)
        if string is not None:
            quote = string[0][0]
            self.push(STRING, unescape(string[0][1:-1], quote))
            self.move(string[0])
            return
        if char == '"':
            self.move('"')
            self.lex_double_quoted()
            return
        raise TwigSyntaxError(f'Unexpected character "{char}".', self.line)

    def lex_double_quoted(self) -> None:
        """Read a double-quoted string with ``#{...}`` interpolations."""
        code = self.code
        first = True
        while True:
            if code.startswith("#{", self.cursor):
                self.push(INTERPOLATION_START)
                self.move("#{")
                depth = len(self.brackets)
                self.brackets.append(("{", self.line))
                while True:
                    if len(self.brackets) == depth + 1:
                        closing = re.compile(r"\s*\}").match(code, self.cursor)
                        if closing is not None:
                            self.brackets.pop()
                            self.push(INTERPOLATION_END)
                            self.move(closing[0])
                            break
                    if self.cursor >= len(code):
                        raise TwigSyntaxError('Unclosed """.', self.line)
                    self.lex_token(code)
                first = False
                continue
            part = _DQ_PART.match(code, self.cursor)
            if part is not None and part[0]:
                self.push(STRING, unescape(part[0], '"'))
                self.move(part[0])
                first = False
                continue
            if code.startswith('"', self.cursor):
                if first:
                    self.push(STRING, "")
                self.move('"')
                return
            raise TwigSyntaxError('Unclosed """.', self.line)


def tokenize(source: str) -> list[Token]:
    """Return the tokens of a template; raise TwigSyntaxError on malformed source."""
    return _Lexer(source).run()
