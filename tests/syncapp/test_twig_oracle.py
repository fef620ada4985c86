"""Real Twig (php-cli and php-twig) as the oracle: every template of OpenConnector's shipped mappings, on
sample inputs, renders here exactly as Twig renders it in OpenConnector's environment. Skipped without php."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from syncapp import mapping as mapping_module
from syncapp.twig import TwigError, html_entity_decode
from tests.syncapp.twig_samples import RECORDED, comparable, shipped_cases

pytestmark = pytest.mark.twig_oracle

ORACLE = Path(__file__).with_name("twig_oracle.php")
TWIG_AUTOLOAD = Path(os.environ.get("TWIG_AUTOLOAD", "/usr/share/php/Twig/autoload.php"))


def _execute_mapping_stand_in(render: Any, mapping: Any, input: Any, list: Any = False) -> Any:  # noqa: A002
    # The same stand-in as twig_oracle.php's: what was asked, so the calls themselves are compared.
    return {"mapping": mapping, "input": input, "list": list}


def _environment():
    environment = mapping_module._twig_environment()
    environment.functions["executeMapping"] = _execute_mapping_stand_in
    environment.functions["generateUuid"] = lambda render: "00000000-0000-4000-8000-000000000000"
    return environment


def render_here(template: str, context: dict[str, Any]) -> dict[str, Any]:
    try:
        output = _environment().from_string(template).render(context)
    except TwigError as exc:
        return {"ok": False, "error": exc.message}
    return {"ok": True, "output": html_entity_decode(output)}


def render_with_twig(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [shutil.which("php") or "php", str(ORACLE)], input=json.dumps(cases), capture_output=True, text=True,
        check=True, timeout=120, env={**os.environ, "TWIG_AUTOLOAD": str(TWIG_AUTOLOAD)},
    )
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def php():
    if shutil.which("php") is None or not TWIG_AUTOLOAD.is_file():
        pytest.skip("php and php-twig are not installed (apt-get install -y php-cli php-twig)")


def test_every_shipped_template_renders_as_real_twig_renders_it(php):
    cases = shipped_cases()

    theirs = render_with_twig([{"template": c["template"], "context": c["context"]} for c in cases])

    differences = []
    for case, their in zip(cases, theirs, strict=True):
        ours = render_here(case["template"], case["context"])
        if comparable(ours, case["template"]) != comparable(their, case["template"]):
            differences.append(f"{case['name']} with {json.dumps(case['context'])[:80]}: twig {their}, ours {ours}")
    assert differences == [], "\n".join(differences)


def test_the_recorded_outputs_are_what_real_twig_renders(php):
    # TWIG_ORACLE_RECORD=1 writes them (after a change of the samples or of the shipped mappings).
    cases = shipped_cases()
    theirs = render_with_twig([{"template": c["template"], "context": c["context"]} for c in cases])
    outputs = {case["id"]: comparable(their, case["template"]) for case, their in zip(cases, theirs, strict=True)}
    if os.environ.get("TWIG_ORACLE_RECORD"):
        RECORDED.write_text(json.dumps(outputs, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")

    assert json.loads(RECORDED.read_text(encoding="utf-8")) == outputs


@pytest.mark.parametrize("template", [
    "{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e+20 }} {{ -0.0 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 2 ** 70 }}",
    "{{ '10' == '1e1' }}|{{ 'abc' == 0 }}|{{ null == false }}|{{ [] == false }}|{{ '0' ? 'y' : 'n' }}",
    "{{ {'b': 1, 'a': 2}|sort|json_encode }} {{ [3, 1, 2]|sort|json_encode }} {{ [1, 2, 3]|filter(v "
    "=> v > 1)|json_encode }}",
    "{{ 'é/ü'|json_encode }} {{ {'a': [f, 2.5]}|json_encode }} {{ 'a b&c'|url_encode }} {{ {'a': 'b "
    "c', 'd': [1]}|url_encode }}",
    "{{ 1234.5|number_format }} {{ 1234.5678|number_format(2, ',', '.') }} {{ 2.5|round }} {{ "
    "-2.5|round }} {{ 1.45|round(1) }}",
    "{{ '%05.1f|%-4s|%x|%+d'|format(3.14159, 'ab', 255, 3) }} {{ 'a.b.c'|split('.', 2)|json_encode "
    "}} {{ 'abc'|split('')|join('-') }}",
    "{{ 'now'|date('Y') > 2000 }} {{ '2024-02-29 13:05:09'|date('D, d M Y H:i:s N jS z t L W o y a "
    "A g G h U e T P p O c r') }}",
    "{{ 1700000000|date('Y-m-d\\\\TH:i:s') }} {{ '2024-01-01T10:00:00+02:00'|date('c') }} {{ '@86400'|date('Y-m-d') }}",
    "{{ 0|date('T e P', false) }}|{{ '2024-01-01T00:00:00Z'|date('T e', false) }}|"
    "{{ '2024-01-01T00:00:00+00:00'|date('T e', false) }}|{{ '2024-01-01T00:00:00-0530'|date('c T e', false) }}|"
    "{{ '2024-07-01 10:00'|date('T I c', 'Europe/Amsterdam') }}|"
    "{{ '2024-01-31'|date_modify('+1 month')|date('Y-m-d') }}",
    "{{ 'abc'|join(',') }}|{{ null|join(',') }}|{{ 123|first }}{{ 123|last }}|{{ null|first }}|{{ 5|length }}|"
    "{{ null|length }}|{{ 'x'|split(',')|length }}|{{ null|lower }}|{{ '5 apples' + 3 }}|{{ 'abc'|number_format }}",
    "{% for i in 'abc' %}{{ i }}{% else %}no{% endfor %}|{% for k in null %}{{ k }}{% else %}none{% endfor %}|"
    "{% for a in [1, 2] %}{% for b in [3, 4] %}{{ loop.parent.loop.index }}{{ loop.index }},{% endfor %}{% endfor %}",
    "{{ {'a': {'b': null}}.a.b ?? 'n' }}|{{ {'a': 1}.a.b ?? 'n' }}|{{ x.y.z|default('d') }}|{{ [1][5] ?? 'oob' }}|"
    "{{ {'0': 'zero'}[0] }}{{ {'0': 'zero'}.0 }}|{{ [null]|first is null ? 'null' }}",
    # Not "(-2) ** 0.5": Debian's Twig 3.5 drops the parentheses (-(2 ** 0.5)); Twig 3.15+, OpenConnector's, keeps them.
    "{{ 0 ** -1 }} {{ 2 ** 1000 }} {{ (-2) ** 1001 }} {{ 10 ** 20 }} {{ -7 // 2 }} {{ 2 ** -1 }} {{ 9 ** 0.5 }}|"
    "{{ null has some v => v }}{{ [] has every v => v }}{{ [1, 0] has some v => v }}{{ [1, 0] has every v => v }}",
    "{{ 'x1y o\\'brien a.b c-d'|title }}|{{ 'a<b\nc'|nl2br }}|{{ x|nl2br }}|{{ []|first|json_encode }}|"
    "{{ null|e|abs }}|{{ 5|e + 1 }}|{{ 'ab' b-and 'c' }}|{{ '12 apples' b-or 3 }}|{{ (-0.5) is divisible by(2) }}",
    "{{ (-3)|reverse }}|{{ 2.5|first }}|{{ [3, 1, 2]|round }}|{{ []|number_format(2) }}|{{ 'abc' ends with x }}",
    "{{ '%2C'|format }}",
    "{{ x|capitalize }}{{ [1]|lower }}",
    "{{ 'Hello WORLD'|title }} {{ 'hELLO'|capitalize }} {{ '  x '|trim }}|{{ "
    "'<p>a<br>b</p>'|striptags }} {{ 'a\nb'|nl2br }}",
    "{% for k, v in {'a': 1, 'b': 2} %}{{ loop.index }}{{ k }}{{ v }}{{ loop.last ? '.' : ',' }}{% "
    "else %}none{% endfor %}",
    "{% set n = 0 %}{% for i in 1..3 %}{% set n = n + i %}{% set inner = i %}{% endfor %}{{ n }}{{ "
    "inner ?? 'gone' }}{{ i ?? 'gone' }}",
    "{% set x %}<b>{{ '<i>' }}</b>{% endset %}{{ x }}|{{ x|upper }}|{% apply upper %}a{{ '<' }}b{% endapply %}",
    "{% with {'a': 1} only %}{{ a }}{{ b ?? 'no b' }}{% endwith %}{{ a ?? 'no a' }}",
    "{{ [1, [2, 3]]|merge([4])|length }} {{ {'a': 1}|merge({'a': 2, 'b': 3})|keys|join }} {{ "
    "[1,2,3,4,5]|slice(1, 2)|join }} {{ 'abcdef'|slice(-2) }}",
    "{{ 'abc' starts with 'a' }}{{ 'abc' ends with 'bc' }}{{ 'abc' matches '/^a.c$/' }}{{ 5 b-and 3 "
    "}}{{ 5 b-or 3 }}{{ 5 b-xor 3 }}",
    "{{ x is empty }}{{ 0 is empty }}{{ '0' is empty }}{{ [] is empty }}{{ x is defined }}{{ x is "
    "null }}{{ 4 is divisible by(2) }}{{ 3 is odd }}",
    "{{ ['a', 'b']|reduce((c, v) => c ~ v, '>') }} {{ [1, 2]|map(v => v * 2)|join(',') }} {{ [5, "
    "7]|first }}{{ [5, 7]|last }}{{ 'ab'|reverse }}",
    "{{ {'a': '1.5', 'b': 'x'}.a + 1 }} {{ max(1, 3, 2) }}{{ min([4, 2]) }} {{ range(0, 10, 5)|join "
    "}} {{ ('a'..'c')|join }}",
    "{{ '&amp;'|raw }} {{ '&lt;' }} {{ x }} &eacute; &apos; &#39; &#x41;",
    "&#128;|&#0;|&#x110000;|&#xD800;|&#x1F600;|&euro;|&nbsp;|&#1;|&#x7F;|&#11;|&#13;|&#9;|&#xFFFE;|&AMP;|&bogus;|&amp",
    "{{ [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'y'}]|column('b', 'a')|json_encode }} {{ [1, 2, "
    "3]|batch(2, 0)|json_encode }}",
    "{{ 'a' ~ 1 + 2 }} {{ 1 + 2 ~ 'a' }} {{ not 1 == 2 }} {{ -1 ** 2 }} {{ (-1) ** 2 }} {{ 2 ?: 3 "
    "}} {{ null ?: 3 }} {{ a.b.c ?? 'd' }}",
    "{{ 'Café au Lait_x!'|slugify }} {{ 'aGk='|b64dec }}{{ 'hi'|b64enc }} {{ '{\"a\": [1]}'|json_decode|json_encode }}",
    "{{- ' x ' -}}|{%- if true -%} y {%- endif -%}|{{~ ' z ' ~}}|\n{# comment #}\n{% if true %}\nline\n{% endif %}\n",
])
def test_a_construct_renders_as_real_twig_renders_it(php, template):
    context = {"x": "<&>", "f": 1.0}

    [theirs] = render_with_twig([{"template": template, "context": context}])

    ours = render_here(template, context)

    assert ours == theirs if theirs["ok"] else not ours["ok"], f"twig: {theirs}"


_VALUES = ["1", "'a'", "x", "a.b", "[1, 2]", "{'k': 'v', 'n': 2}", "n", "loop.index", "loop.first", "i", "k", "v",
           "null", "''", "a"]


def _random_expression(pick: random.Random) -> str:
    value = pick.choice(_VALUES)
    form = pick.choice(["{}", "{} ~ " + pick.choice(_VALUES), "{}|length", "{} is defined", "{} ?? 'd'",
                        "{}|default('z')", "{}|json_encode"])
    return form.replace("{}", value, 1)


def _random_block(pick: random.Random, depth: int = 0) -> str:
    """Return a random template of loops, conditions, sets, captures, with, apply and prints."""
    parts = []
    for _ in range(pick.randint(1, 4)):
        roll = pick.random()
        if depth < 2 and roll < 0.25:
            sequence = pick.choice(["x", "a", "[1, 2, 3]", "a.b", "null", "{}", "'str'"])
            target = pick.choice(["i", "k, v"])
            body = _random_block(pick, depth + 1)
            parts.append(f"{{% for {target} in {sequence} %}}{body}{{% else %}}E{{% endfor %}}")
        elif depth < 2 and roll < 0.45:
            then, otherwise = _random_block(pick, depth + 1), _random_block(pick, depth + 1)
            parts.append(f"{{% if {_random_expression(pick)} %}}{then}"
                         f"{{% elseif {_random_expression(pick)} %}}B{{% else %}}{otherwise}{{% endif %}}")
        elif roll < 0.6:
            parts.append(f"{{% set {pick.choice(['n', 'i', 'k', 'm'])} = {_random_expression(pick)} %}}")
        elif depth < 2 and roll < 0.65:
            parts.append(f"{{% set m %}}{_random_block(pick, depth + 1)}{{% endset %}}")
        elif depth < 2 and roll < 0.7:
            body = _random_block(pick, depth + 1)
            parts.append(f"{{% with {{'w': {_random_expression(pick)}}} %}}{body}{{% endwith %}}")
        elif depth < 2 and roll < 0.75:
            parts.append(f"{{% apply upper %}}{_random_block(pick, depth + 1)}{{% endapply %}}")
        else:
            left, right = pick.choice(["", "-", "~"]), pick.choice(["", "-", "~"])
            parts.append(pick.choice(["", " ", "\n", " -"]) + f"{{{{{left} {_random_expression(pick)} {right}}}}}"
                         + pick.choice(["", " ", "\n ", "\n"]))
    return "".join(parts)


def test_random_templates_of_statements_render_as_real_twig_renders_them(php):
    pick = random.Random(20261206)  # the same templates every run
    context = {"x": [1, "a", {"b": 2}], "a": {"b": [1, 2], "c": "str"}, "n": 5}
    templates = [_random_block(pick) + "|{{ n }}|{{ i ?? 'no i' }}|{{ m ?? 'no m' }}" for _ in range(400)]

    theirs = render_with_twig([{"template": template, "context": context} for template in templates])

    differences = [
        f"{template!r}: twig {their}, ours {ours}"
        for template, their in zip(templates, theirs, strict=True)
        if (ours := render_here(template, context)) != their and (their["ok"] or ours["ok"])
    ]
    assert differences == [], "\n".join(differences[:5])
