"""Every template of OpenConnector's shipped mappings renders, on sample inputs, what real Twig renders
(recorded from Twig by test_twig_oracle.py into twig_recorded.json), also where php is not installed."""
from __future__ import annotations

import json

from syncapp import mapping as mapping_module
from syncapp.twig import TwigError, html_entity_decode
from tests.syncapp.twig_samples import RECORDED, comparable, shipped_cases


def render(template: str, context: dict) -> dict:
    environment = mapping_module._twig_environment()
    # The stand-ins twig_oracle.php gives real Twig: what was asked, so the calls themselves are compared.
    environment.functions["executeMapping"] = lambda render, mapping, input, list=False: {  # noqa: A006
        "mapping": mapping, "input": input, "list": list,
    }
    try:
        return {"ok": True, "output": html_entity_decode(environment.from_string(template).render(context))}
    except TwigError as exc:
        return {"ok": False, "error": exc.message}


def test_every_shipped_template_is_recorded():
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))

    missing = [case["id"] for case in shipped_cases() if case["id"] not in recorded]

    assert missing == [], "record them: TWIG_ORACLE_RECORD=1 pytest -m twig_oracle tests/syncapp/test_twig_oracle.py"


def test_every_shipped_template_renders_what_twig_rendered():
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))

    differences = [
        f"{case['id']}: twig {recorded[case['id']]!r}, ours {ours!r}"
        for case in shipped_cases()
        if (ours := comparable(render(case["template"], case["context"]), case["template"])) != recorded[case["id"]]
    ]

    assert differences == [], "\n".join(differences)


def test_the_samples_reach_the_templates_branches():
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))

    outputs = set(recorded.values())

    # Not all empty: the samples exercise the loops and conditions, not only their empty paths.
    first_file = '[{ "filename": "besluit.pdf", "endpoint": "/api/v1/case/7c4e/document/f1/download"'
    assert any(value.startswith(first_file) for value in outputs)
    assert "Een titel" in outputs
    assert "error" in outputs  # woo-elastic's strip_tags and preg_replace are not Twig filters
