"""Sample inputs for OpenConnector's shipped mappings: objects shaped as each configuration's source sends
them, with the edge cases its templates branch on (missing keys, empty lists, "0", HTML, quotes)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CONFIGURATIONS = Path(__file__).resolve().parents[3] / "shared/conformance/openconnector/configurations"
# What real Twig renders for every case of shipped_cases(), recorded by test_twig_oracle.py.
RECORDED = Path(__file__).with_name("twig_recorded.json")

XXLLNC_ZAAK = {
    "id": "7c4e", "reference": "case-7c4e",
    "values": {
        "case.subject": "Verzoek <Woo> & \"bijlagen\"", "attribute.woo_samenvatting": "Samenvatting",
        "attribute.woo_beschrijving": "Regel 1\nRegel 2 &amp; meer", "attribute.woo_categorie": "Convenanten",
        "attribute.woo_publicatiedatum": "2024-05-01",
        "attribute.woo_publicatie": [
            {"filename": "besluit.pdf", "uuid": "f1"}, {"filename": "o'brien.pdf", "uuid": "f2"},
        ],
        "attribute.woo_inventarisatielijst": [{"filename": "lijst.xlsx", "uuid": "f3"}],
        "attribute.woo_besluit": [],
    },
}
RX_ZAAK = {
    "eigenschappen": [
        {"naam": "Titel", "waarde": "Een titel"}, {"naam": "Titel", "waarde": "Tweede titel"},
        {"naam": "Categorie", "waarde": "0"}, {"naam": "Publicatiedatum", "waarde": "2024-03-05T10:20:30+01:00"},
        {"naam": "Leeg"},
    ],
    "zaakinformatieobjecten": [
        {"bestandsnaam": "a.pdf", "inhoud": "https://rx.example/a"}, {"bestandsnaam": "", "inhoud": "x"},
        {"bestandsnaam": "b \"c\".pdf", "inhoud": "https://rx.example/b?x=1&y=2"},
    ],
}
SHAREPOINT = {
    "d": {"woo_x005f_publicatiedatum": "2023-12-31T23:30:00Z", "Title": "Verzoek"},
    "fileUrls": [
        {"Name": "een.pdf", "d": {"document_x005f_label": "besluit"}, "__metadata": {"uri": "https://sp.example/1"}},
        {"Name": "twee.pdf", "d": {}, "__metadata": {"uri": "https://sp.example/2"}},
        {"Name": "drie.pdf", "d": {"document_x005f_label": "bijlage"}, "__metadata": {"uri": "https://sp.example/3"}},
    ],
}
XXLLNC_SUITE = {
    "zaaktypecode": "B1873", "files": [
        {"titel": "Besluit", "bestandsnaam": "besluit.pdf", "inhoud": "https://suite.example/1"},
        {"bestandsnaam": "zonder-titel.pdf"},
    ],
}
WOO_ELASTIC = {"categorie": "Convenanten", "titel": "Een Titel", "samenvatting": "S", "publicatiedatum": "2024-01-01"}
XXLLNC_CASE = {
    "reference": "case-1", "casetype": {"result": {"instance": {"name": "Type"}}},
    "instance": {
        "price": "-", "payment_status": None, "stalled_until": "2024-02-01",
        "outcome": {"instance": {"name": "Toegekend"}}, "milestone": {"instance": {"phase_label": "Fase 1"}},
        "requestor": {"reference": "r1"}, "route": {"instance": {"role": {"instance": {"name": "Behandelaar"}}}},
        "attributes": {"a": [["x"]], "b": [[["y"]]], "c": ["plain"], "d": []},
        "properties": {"lead_time_legal": {"weken": "6"}, "lead_time_service": {"kalenderdagen": "0"},
                       "designation_of_confidentiality": "Openbaar"},
        "phases": [
            {"fields": [{"type": "file", "label": "Doc"}, {"type": "text", "label": "Veld"}],
             "route": {"role": {"instance": {"name": "Aanvrager"}}}},
            {"fields": []},
        ],
        "results": [{"label": "r1"}, {"label": "r2"}],
    },
    "zaaktype": {
        "resultaattypen": [{"toelichting": "Toegekend", "_self": {"id": "rt1"}}], "roltypen": [],
        "statustypen": [{"omschrijving": "Fase 1", "_self": {"id": "st1"}}],
        "eigenschappen": [{"naam": "a", "_self": {"id": "e1"}}], "originId": "ct-9",
    },
    "documents": {"result": {"instance": {"rows": [{"id": 1}, {"id": 2}]}}},
    "name": "a", "value": [["x"]], "eigenschappen": [{"naam": "a", "_self": {"id": "e1"}}],
    "milestone": {"instance": {"phase_label": "Fase 1"}},
    "statustypen": [{"omschrijving": "Fase 1", "_self": {"id": "s"}}],
    "original_label": "", "label": "Label", "magic_string": "magic", "publish_public": True,
    "role": {"instance": {"name": "Behandelaar", "description": "Doet het"}, "preview": "p"},
    "requestor": {"instance": {"subject": {"instance": {
        "firstname": "Jan", "surname": "Jansen", "email_adress": "jan@example.org", "personal_number": "123",
        "positions": {"instance": {"rows": [{}, {}]}},
        "address_residence": {"instance": {"city": "Utrecht", "zipcode": "1234AB", "street_number": 0}},
    }}}, "reference": "req-1"},
    "roltypen": [{"omschrijvingGeneriek": "BEHANDELAAR", "_self": {"id": "rt"}}],
    "type": "datetime", "limit_values": 0, "integriteit": {"waarde": ""}, "fields": [{"label": "L", "help": ""}],
    "casetypeReference": "ct-", "outcome": {"instance": {"name": "Toegekend"}},
    "resultaattypen": [{"toelichting": "Toegekend", "_self": {"id": "r9"}}],
    "zaakArrayObject": {"rollen": [{"betrokkeneIdentificatie": {}}], "verantwoordelijkeOrganisatie": "001"},
    "thiswontwork": [{"a": 1}],
    "result": {"instance": {"file": {"instance": {"md5": "abc", "sha_256": "def"}}}},
    "caseId": "c1", "selection_list": "1", "selection_list_number": "1.2.3", "type_of_archiving": "Conversie",
    "period_of_preservation": "365",
}

# Inputs per configuration folder; every mapping is also rendered with an empty input.
SAMPLES: dict[str, list[dict[str, Any]]] = {
    "xxllnc-zoekendpoint-woo": [XXLLNC_ZAAK],
    "RX-woo": [RX_ZAAK],
    "sharepoint-woo": [SHAREPOINT],
    "xxllnc-suite-woo": [XXLLNC_SUITE, {"zaaktypecode": "LP00000091", "files": []}],
    "woo-elastic": [WOO_ELASTIC],
    "xxllnc-zgw": [XXLLNC_CASE],
}


def shipped_cases() -> list[dict[str, Any]]:
    """Return every template of the shipped mappings with each sample input of its folder, and an empty one."""
    cases = []
    for path in sorted(CONFIGURATIONS.glob("*/mappings/*.json")):
        folder = path.parts[-3]
        mapping = json.loads(path.read_text(encoding="utf-8")).get("mapping") or {}
        for key, template in mapping.items():
            if not (isinstance(template, str) and ("{{" in template or "{%" in template)):
                continue
            for index, context in enumerate([{}, *SAMPLES[folder]]):
                name = f"{folder}/{path.name}:{key}"
                cases.append({"id": f"{name}#{index}", "name": name, "template": template, "context": context})
    return cases


def comparable(result: dict[str, Any], template: str) -> Any:
    """Return a render's result as compared: its output (the digits of the current time masked), or "error"."""
    if not result["ok"]:
        return "error"  # both must fail; the wording differs (Twig names its template and class)
    output = result["output"]
    if "now" in template:
        output = re.sub(r"\d", "0", output)
    return output
