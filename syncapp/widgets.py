"""Admin widgets for JSON fields: a textarea that the browser turns into a JSON editor (CodeMirror 5,
served from our static files)."""
from __future__ import annotations

import contextlib
import json
from typing import Any

from django import forms

CODEMIRROR = "syncapp/vendor/codemirror"


class PrettyJSONTextarea(forms.Textarea):
    """JSON shown indented, in a monospace box as tall as its content; what does not parse is shown as typed.

    With JavaScript, `syncapp/json-editor.js` turns it into an editor (line numbers, bracket matching, a
    syntax check naming line and column, a Format button) that writes back into this textarea, so the form
    posts what the editor shows; without JavaScript the textarea works as it is. Given JSON Schemas
    (`use_schemas`), the editor completes keys, describes them on hover and marks those that do not fit.
    """

    class Media:
        css = {"all": [
            f"{CODEMIRROR}/lib/codemirror.css",
            f"{CODEMIRROR}/addon/lint/lint.css",
            f"{CODEMIRROR}/addon/fold/foldgutter.css",
            f"{CODEMIRROR}/addon/hint/show-hint.css",
            "syncapp/json-editor.css",
        ]}
        # In this order: CodeMirror, then the mode and the add-ons that register on it, then ours.
        js = [
            f"{CODEMIRROR}/lib/codemirror.js",
            f"{CODEMIRROR}/mode/javascript/javascript.js",
            f"{CODEMIRROR}/addon/edit/matchbrackets.js",
            f"{CODEMIRROR}/addon/edit/closebrackets.js",
            f"{CODEMIRROR}/addon/lint/lint.js",
            f"{CODEMIRROR}/addon/fold/foldcode.js",
            f"{CODEMIRROR}/addon/fold/foldgutter.js",
            f"{CODEMIRROR}/addon/fold/brace-fold.js",
            f"{CODEMIRROR}/addon/hint/show-hint.js",
            "syncapp/json-schema.js",
            "syncapp/json-editor.js",
        ]

    def __init__(self, attrs=None):
        super().__init__({
            "style": "font-family: monospace; width: 60em", "data-json-editor": "", "spellcheck": "false",
            **(attrs or {}),
        })

    def use_schemas(self, *, schemas: dict[str, dict[str, Any]], selector: str) -> None:
        """Edit the JSON against the schema of the type chosen in the select `selector` (a CSS selector).

        `schemas` maps each option of that select to the JSON Schema of this field's value.
        """
        self.attrs["data-json-schemas"] = json.dumps(schemas, ensure_ascii=False, separators=(",", ":"))
        self.attrs["data-schema-selector"] = selector

    def format_value(self, value):
        text = super().format_value(value)
        # Invalid input of a refused form does not parse: it is shown back as it was typed.
        with contextlib.suppress(TypeError, ValueError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False) if text else text
        return text

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        lines = (self.format_value(value) or "").count("\n") + 2
        context["widget"]["attrs"]["rows"] = max(4, min(lines, 30))
        return context


class WriteOnlyTextarea(PrettyJSONTextarea):
    """A JSON editor that never renders a value: typed credentials are not shown back, not even on a
    form refused for another field (the editor starts from the empty textarea)."""

    def format_value(self, value):
        return None

    def get_context(self, name, value, attrs):
        context = super().get_context(name, None, attrs)
        context["widget"]["attrs"]["data-json-editor-write-only"] = ""
        return context
