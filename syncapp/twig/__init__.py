"""Twig 3 templates in Python: a lexer, a parser with Twig's precedence and an evaluator with PHP's semantics.

Used for mappings written in Twig (those OpenConnector ships). Supported: the tags ``if``/``elseif``/``else``,
``for`` (with ``loop`` and ``else``), ``set`` (also as a block), ``apply``, ``with``, ``autoescape``, ``do``
and ``verbatim``; whitespace control; Twig's operators, core filters, functions and tests (see the README's
Twig section for the list and the share of Twig's own fixtures that pass). Not supported: templates that
use other templates (``include``, ``extends``, ``block``, ``embed``, ``use``, ``import``, ``macro``) and PHP
objects. Resource use is bounded by the caller's :class:`Limits`.
"""

from __future__ import annotations

import re
from html.entities import name2codepoint

from syncapp.twig.engine import Environment, Limits, Template
from syncapp.twig.errors import TwigError, TwigRuntimeError, TwigSyntaxError
from syncapp.twig.php import to_string as php_text

__all__ = [
    "Environment",
    "Limits",
    "Template",
    "TwigError",
    "TwigRuntimeError",
    "TwigSyntaxError",
    "html_entity_decode",
    "php_text",
]

_ENTITY = re.compile(r"&(?:#(\d+)|#[xX]([0-9a-fA-F]+)|([A-Za-z][A-Za-z0-9]*));")


def _decode_entity(match: re.Match[str]) -> str:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        # HTML 4.01's named entities (PHP's default table); &apos; is not one of them.
        code = name2codepoint.get(name)
        return chr(code) if code is not None else match[0]
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    # PHP keeps the control characters HTML 4.01 does not allow (but tab, newline and carriage return),
    # surrogates and what is beyond Unicode as they are written.
    allowed = (
        code in (0x09, 0x0A, 0x0D)
        or 0x20 <= code <= 0x7E
        or (0xA0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF)
    )
    return chr(code) if allowed else match[0]


def html_entity_decode(text: str) -> str:
    """Return PHP's html_entity_decode(text) (ENT_QUOTES | ENT_SUBSTITUTE | ENT_HTML401, UTF-8)."""
    if "&" not in text:
        return text
    return _ENTITY.sub(_decode_entity, text)
