"""Loopback fakes of the APIs OpenConnector's shipped configurations read (../shared/conformance/openconnector).

Each fake serves a few cases with the attributes its folder's mapping reads, the detail (extra data)
endpoints its synchronization calls and the documents its rule fetches, and records every request.
`requests_seen()` gives them as (method, path, query) with the path percent-decoded, the way the
fixtures in expected/ list what OpenConnector asks for.

The cases are small but shaped like the real APIs: xxllnc's public search (`result`), xxllnc suite's
ZGW-like zaken and informatieobjecten, RX Fundament's ZGW Zaken/Catalogi/Documenten APIs (absolute URLs
to the fake itself, as a ZGW API links its resources), SharePoint's REST API in odata=verbose.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import unquote

from tests.loopback import LoopbackServer, Reply, Request

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n"  # not JSON, not base64: stored as it is


def pdf_of(name: str) -> bytes:
    """Return a small PDF-like document that says which it is."""
    return PDF + f"% {name}\n%%EOF\n".encode()


def not_found(request: Request) -> Reply:
    return 404, {}, {"detail": f"no route {request.method} {request.path}"}


class Fake:
    """A LoopbackServer with routes: (method, regex on the decoded path) -> handler(request, match)."""

    routes: list[tuple[str, str, str]] = []  # (method, pattern, name of the method answering)
    file_paths = r"$^"  # the decoded paths of documents a rule fetches (the rest are lists and details)
    token_paths = r"$^"  # the decoded paths of an OAuth token endpoint

    def __init__(self) -> None:
        self.server = LoopbackServer(self.answer)

    def __enter__(self) -> Fake:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def url(self) -> str:
        return self.server.url

    def answer(self, request: Request) -> Reply:
        path = unquote(request.path)
        for method, pattern, name in self.routes:
            match = re.fullmatch(pattern, path)
            if match and request.method == method:
                return getattr(self, name)(request, match)
        return not_found(request)

    def requests_seen(self) -> list[tuple[str, str, dict[str, str]]]:
        return [(r.method, unquote(r.path), r.query) for r in self.server.requests]

    def requests_of(self, kind: str) -> list[Request]:
        """Return the requests of one kind, in order: "token", "file" or "data" (lists and details)."""

        def kind_of(request: Request) -> str:
            path = unquote(request.path)
            if re.fullmatch(self.token_paths, path):
                return "token"
            return "file" if re.fullmatch(self.file_paths, path) else "data"

        return [request for request in self.server.requests if kind_of(request) == kind]


# ---------------------------------------------------------------------------------------------
# xxllnc-zoekendpoint-woo: xxllnc zaaksysteem's public search endpoint


ZOEK_CASES: list[dict[str, Any]] = [
    {
        "id": "6f1c2a3e-1b1d-4c0e-9a51-0d1e2f3a4b01",
        "type": "case",
        "number": 1201,
        "values": {
            "case.subject": "Besluit op Woo-verzoek over windpark De Zuidwester",
            "case.number": 1201,
            "case.status": "resolved",
            "attribute.woo_samenvatting": "Openbaarmaking van stukken over het windpark.",
            "attribute.woo_beschrijving": "Het college heeft besloten de stukken deels openbaar te maken.",
            "attribute.woo_categorie": "Woo-verzoeken en -besluiten",
            "attribute.woo_publicatiedatum": "2024-09-12",
            "attribute.woo_publicatie": [
                {
                    "filename": "publicatie-windpark.pdf",
                    "uuid": "a1000000-0000-4000-8000-000000000001",
                    "mimetype": "application/pdf",
                }
            ],
            "attribute.woo_inventarisatielijst": [
                {
                    "filename": "inventaris & lijst.pdf",
                    "uuid": "a1000000-0000-4000-8000-000000000002",
                    "mimetype": "application/pdf",
                }
            ],
            "attribute.woo_informatieverzoek": [],
            "attribute.woo_besluit": [
                {
                    "filename": "besluit-windpark.pdf",
                    "uuid": "a1000000-0000-4000-8000-000000000003",
                    "mimetype": "application/pdf",
                }
            ],
        },
    },
    {
        "id": "6f1c2a3e-1b1d-4c0e-9a51-0d1e2f3a4b02",
        "type": "case",
        "number": 1202,
        "values": {
            "case.subject": 'Convenant "Schone lucht" 2024',
            "case.number": 1202,
            "case.status": "resolved",
            "attribute.woo_samenvatting": "",
            "attribute.woo_beschrijving": "Convenant tussen gemeente en provincie <regio Noord>.",
            "attribute.woo_categorie": "Convenanten",
            "attribute.woo_publicatiedatum": "2024-10-01",
            "attribute.woo_publicatie": [
                {
                    "filename": "convenant.pdf",
                    "uuid": "a2000000-0000-4000-8000-000000000001",
                    "mimetype": "application/pdf",
                }
            ],
        },
    },
    {
        "id": "6f1c2a3e-1b1d-4c0e-9a51-0d1e2f3a4b03",
        "type": "case",
        "number": 1203,
        "values": {
            "case.subject": "Jaarplan handhaving 2025",
            "case.number": 1203,
            "case.status": "resolved",
            "attribute.woo_categorie": "Plannen en rapporten",
            "attribute.woo_publicatiedatum": "2024-11-20",
        },
    },
    {  # no category: the synchronization's conditions leave it out
        "id": "6f1c2a3e-1b1d-4c0e-9a51-0d1e2f3a4b04",
        "type": "case",
        "number": 1204,
        "values": {
            "case.subject": "Intern memo zonder Woo-categorie",
            "case.number": 1204,
            "case.status": "open",
            "attribute.woo_categorie": None,
            "attribute.woo_publicatiedatum": "2024-12-01",
            "attribute.woo_publicatie": [
                {"filename": "memo.pdf", "uuid": "a4000000-0000-4000-8000-000000000001", "mimetype": "application/pdf"}
            ],
        },
    },
]


class XxllncZoekFake(Fake):
    """xxllnc's /public_search/x/search, a page of cases in `result` (page 2 and on: none), and the
    download of a case's document."""

    routes = [
        ("GET", r"/public_search/x/search", "search"),
        ("GET", r"/api/v1/case/([^/]+)/document/([^/]+)/download", "download"),
    ]
    file_paths = r"/api/v1/case/[^/]+/document/[^/]+/download"

    def search(self, request: Request, match: re.Match) -> Reply:
        page = int(request.query.get("page", "1"))
        return 200, {}, {"result": ZOEK_CASES if page == 1 else [], "num_rows": len(ZOEK_CASES)}

    def download(self, request: Request, match: re.Match) -> Reply:
        case_id, document = match.groups()
        return 200, {"Content-Type": "application/pdf"}, pdf_of(f"{case_id}/{document}")


# ---------------------------------------------------------------------------------------------
# xxllnc-suite-woo: xxllnc suite's zaaksysteem API (ZGW-like, with the document's content inline)


SUITE_ZAKEN: list[dict[str, Any]] = [
    {
        "identificatie": "ZAAK-2024-0001",
        "omschrijving": "Woo-verzoek over de herinrichting van het Stationsplein",
        "zaaktypecode": "LP00000431",
        "zaaktypeomschrijving": "Woo-verzoek behandelen",
        "startdatum": "2024-09-02",
        "einddatum": "2024-11-15",
        "vertrouwelijkheidaanduiding": "openbaar",
    },
    {
        "identificatie": "ZAAK-2024-0002",
        "omschrijving": "Klachtoordeel over de afvalinzameling",
        "zaaktypecode": "B0757",
        "zaaktypeomschrijving": "Klacht behandelen",
        "startdatum": "2024-10-07",
        "einddatum": "2024-12-20",
        "vertrouwelijkheidaanduiding": "openbaar",
    },
    {
        "identificatie": "ZAAK-2024-0003",
        "omschrijving": "Besluit op Woo-verzoek over subsidies",
        "zaaktypecode": "B1873",
        "zaaktypeomschrijving": "Woo-besluit nemen",
        "startdatum": "2025-01-13",
        "einddatum": "2025-03-01",
        "vertrouwelijkheidaanduiding": "openbaar",
    },
    {  # a zaaktype that is neither Woo nor a complaint: the conditions leave it out
        "identificatie": "ZAAK-2024-0004",
        "omschrijving": "Aanvraag omgevingsvergunning dakkapel",
        "zaaktypecode": "LP00000999",
        "zaaktypeomschrijving": "Omgevingsvergunning",
        "startdatum": "2024-08-20",
        "einddatum": "2024-10-01",
        "vertrouwelijkheidaanduiding": "openbaar",
    },
]

SUITE_DOCUMENTS: dict[str, list[dict[str, Any]]] = {
    "ZAAK-2024-0001": [
        {"identificatie": "DOC-0001-1", "titel": "Verzoek", "bestandsnaam": "verzoek-stationsplein.pdf"},
        {"identificatie": "DOC-0001-2", "titel": "Besluit", "bestandsnaam": "besluit-stationsplein.pdf"},
    ],
    "ZAAK-2024-0002": [
        {"identificatie": "DOC-0002-1", "titel": "", "bestandsnaam": "oordeel.pdf"},
    ],
    "ZAAK-2024-0003": [],
    "ZAAK-2024-0004": [
        {"identificatie": "DOC-0004-1", "titel": "Aanvraag", "bestandsnaam": "aanvraag.pdf"},
    ],
}


def suite_document(identificatie: str) -> dict[str, Any]:
    """Return an informatieobject in full, its content base64 in `inhoud`."""
    listed = next(d for documents in SUITE_DOCUMENTS.values() for d in documents if d["identificatie"] == identificatie)
    return {
        **listed,
        "formaat": "application/pdf",
        "vertrouwelijkheidaanduiding": "openbaar",
        "inhoud": base64.b64encode(pdf_of(identificatie)).decode(),
    }


class XxllncSuiteFake(Fake):
    """xxllnc suite: /tlb/zaaksysteem/api/v1/zaken (all in one answer), a zaak's informatieobjecten (their
    ids), and an informatieobject in full."""

    routes = [
        ("GET", r"/tlb/zaaksysteem/api/v1/zaken", "zaken"),
        ("GET", r"/tlb/zaaksysteem/api/v1/zaken/([^/]+)/informatieobjecten", "informatieobjecten"),
        ("GET", r"/tlb/zaaksysteem/api/v1/informatieobjecten/([^/]+)", "informatieobject"),
    ]

    def zaken(self, request: Request, match: re.Match) -> Reply:
        return 200, {}, {"count": len(SUITE_ZAKEN), "next": None, "previous": None, "results": SUITE_ZAKEN}

    def informatieobjecten(self, request: Request, match: re.Match) -> Reply:
        listed = [{"identificatie": d["identificatie"], "titel": d["titel"]} for d in SUITE_DOCUMENTS.get(match[1], [])]
        return 200, {}, {"count": len(listed), "results": listed}

    def informatieobject(self, request: Request, match: re.Match) -> Reply:
        return 200, {}, suite_document(match[1])


# ---------------------------------------------------------------------------------------------
# RX-woo: RX Fundament's ZGW APIs (Zaken, Catalogi, Documenten)


RX_ZAAKTYPE = "c3f1a341-a088-4d80-9bc3-7293250b16e2"
RX_ZAKEN: list[dict[str, Any]] = [
    {
        "uuid": "9b2e4c10-7d3a-4e55-8f61-2a1b3c4d5e01",
        "identificatie": "ZAAK-RX-2025-101",
        "bronorganisatie": "001234567",
        "omschrijving": "Woo-verzoek bomenkap Wilhelminapark",
        "toelichting": "Besluit op een Woo-verzoek over de bomenkap.",
        "registratiedatum": "2025-01-20",
        "startdatum": "2025-01-20",
    },
    {
        "uuid": "9b2e4c10-7d3a-4e55-8f61-2a1b3c4d5e02",
        "identificatie": "ZAAK-RX-2025-102",
        "bronorganisatie": "001234567",
        "omschrijving": "Woo-verzoek parkeerbeleid",
        "toelichting": "Stukken over het parkeerbeleid & de tarieven.",
        "registratiedatum": "2025-01-15",
        "startdatum": "2025-01-15",
    },
    {
        "uuid": "9b2e4c10-7d3a-4e55-8f61-2a1b3c4d5e03",
        "identificatie": "ZAAK-RX-2025-103",
        "bronorganisatie": "001234567",
        "omschrijving": "Woo-verzoek nog in behandeling",
        "toelichting": "",
        "registratiedatum": "2025-01-10",
        "startdatum": "2025-01-10",
    },
]
RX_EIGENSCHAPPEN: dict[str, list[tuple[str, str]]] = {
    RX_ZAKEN[0]["uuid"]: [
        ("Titel", "Besluit bomenkap Wilhelminapark"),
        ("Categorie", "Woo-verzoeken en -besluiten"),
        ("Publicatiedatum", "2025-02-03"),
    ],
    RX_ZAKEN[1]["uuid"]: [
        ("Categorie", "Woo-verzoeken en -besluiten"),
        ("Titel", "Parkeerbeleid 2025"),
        ("Titel", "Een tweede titel die niet telt"),
        ("Publicatiedatum", "2025-02-10T09:30:00+01:00"),
    ],
    RX_ZAKEN[2]["uuid"]: [("Titel", "Woo-verzoek nog in behandeling"), ("Categorie", "")],
}
# Per zaak its documents: (id, bestandsnaam); an empty name is a document the mapping leaves out.
RX_DOCUMENTEN: dict[str, list[tuple[str, str]]] = {
    RX_ZAKEN[0]["uuid"]: [
        ("d0c00000-0000-4000-8000-000000000101", "besluit-bomenkap.pdf"),
        ("d0c00000-0000-4000-8000-000000000102", "inventarislijst bomenkap.pdf"),
    ],
    RX_ZAKEN[1]["uuid"]: [
        ("d0c00000-0000-4000-8000-000000000201", ""),
        ("d0c00000-0000-4000-8000-000000000202", "parkeerbeleid.pdf"),
    ],
    RX_ZAKEN[2]["uuid"]: [],
}
SECURE1 = "https://secure1.acc.enable-u.cloud/tlb/fundament"  # the host the shipped endpoints name


class RxFundamentFake(Fake):
    """RX Fundament: zaken of one zaaktype, the zaaktype, a zaak's zaakinformatieobjecten (by `zaak` URL),
    an enkelvoudiginformatieobject and its download, and a zaak's zaakeigenschappen."""

    routes = [
        ("GET", r"/zaken/api/v1/zaken", "zaken"),
        ("GET", r"/catalogi/api/v1/zaaktypen/([^/]+)", "zaaktype"),
        ("GET", r"/zaken/api/v1/zaakinformatieobjecten", "zaakinformatieobjecten"),
        ("GET", r"/documenten/api/v1/enkelvoudiginformatieobjecten/([^/]+)", "informatieobject"),
        ("GET", r"/documenten/api/v1/enkelvoudiginformatieobjecten/([^/]+)/download", "download"),
        ("GET", r"/zaken/api/v1/zaken/([^/]+)/zaakeigenschappen", "zaakeigenschappen"),
    ]
    file_paths = r"/documenten/api/v1/enkelvoudiginformatieobjecten/[^/]+/download"

    def zaak(self, zaak: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"{self.url}/zaken/api/v1/zaken/{zaak['uuid']}",
            **zaak,
            "zaaktype": f"{self.url}/catalogi/api/v1/zaaktypen/{RX_ZAAKTYPE}",
        }

    def zaken(self, request: Request, match: re.Match) -> Reply:
        return (
            200,
            {},
            {"count": len(RX_ZAKEN), "next": None, "previous": None, "results": [self.zaak(zaak) for zaak in RX_ZAKEN]},
        )

    def zaaktype(self, request: Request, match: re.Match) -> Reply:
        return (
            200,
            {},
            {
                "url": f"{self.url}/catalogi/api/v1/zaaktypen/{match[1]}",
                "identificatie": "WOO-VERZOEK",
                "omschrijving": "Woo-verzoek",
                "vertrouwelijkheidaanduiding": "openbaar",
            },
        )

    def zaakinformatieobjecten(self, request: Request, match: re.Match) -> Reply:
        zaak = request.query.get("zaak", "").rsplit("/", 1)[-1]
        return (
            200,
            {},
            [
                {
                    "url": f"{self.url}/zaken/api/v1/zaakinformatieobjecten/{zaak[:8]}-{n}",
                    "uuid": f"{zaak[:8]}-{n}",
                    "informatieobject": f"{self.url}/documenten/api/v1/enkelvoudiginformatieobjecten/{document}",
                    "zaak": f"{SECURE1}/zaken/api/v1/zaken/{zaak}",
                    "aardRelatieWeergave": "Hoort bij, omgekeerd: kent",
                }
                for n, (document, _) in enumerate(RX_DOCUMENTEN.get(zaak, []), start=1)
            ],
        )

    def informatieobject(self, request: Request, match: re.Match) -> Reply:
        name = dict(d for documents in RX_DOCUMENTEN.values() for d in documents).get(match[1])
        if name is None:
            return not_found(request)
        url = f"{self.url}/documenten/api/v1/enkelvoudiginformatieobjecten/{match[1]}"
        return (
            200,
            {},
            {
                "url": url,
                "identificatie": match[1][-3:],
                "bronorganisatie": "001234567",
                "titel": name or "zonder naam",
                "bestandsnaam": name,
                "formaat": "application/pdf",
                "inhoud": f"{url}/download",
                "vertrouwelijkheidaanduiding": "openbaar",
            },
        )

    def download(self, request: Request, match: re.Match) -> Reply:
        return 200, {"Content-Type": "application/pdf"}, pdf_of(match[1])

    def zaakeigenschappen(self, request: Request, match: re.Match) -> Reply:
        return (
            200,
            {},
            [
                {
                    "url": f"{self.url}/zaken/api/v1/zaken/{match[1]}/zaakeigenschappen/{n}",
                    "naam": naam,
                    "waarde": waarde,
                    "zaak": f"{self.url}/zaken/api/v1/zaken/{match[1]}",
                }
                for n, (naam, waarde) in enumerate(RX_EIGENSCHAPPEN.get(match[1], []), start=1)
            ],
        )


# ---------------------------------------------------------------------------------------------
# sharepoint-woo: SharePoint's REST API (odata=verbose) behind an OAuth2 client-credentials token


SHAREPOINT_TOKEN = "sp-access-token-0b7e"
SHAREPOINT_FOLDERS: list[dict[str, Any]] = [
    {
        "UniqueId": "5f0d8c1e-0a4b-4f4e-9d2c-000000000001",
        "Name": "Woo-besluit 2024-17",
        "properties": {
            "woo_x005f_titel": "Besluit op Woo-verzoek over de Dorpsstraat",
            "woo_x005f_beschrijving": "Het besluit en de openbaar gemaakte stukken.",
            "woo_x005f_samenvatting": "Woo-besluit Dorpsstraat",
            "woo_x005f_categorie": "Woo-verzoeken en -besluiten",
            "woo_x005f_publicatiedatum": "2024-10-01T08:00:00Z",
            "vti_x005f_nexttolasttimemodified": "2024-10-02T08:15:00Z",
        },
        "files": [("9a000000-0000-4000-8000-000000000011", "besluit-dorpsstraat.pdf", "woo_besluit")],
    },
    {
        "UniqueId": "5f0d8c1e-0a4b-4f4e-9d2c-000000000002",
        "Name": "Woo-besluit 2024-18",
        "properties": {
            "woo_x005f_titel": "Besluit op Woo-verzoek over de kermis",
            "woo_x005f_beschrijving": "Twee documenten bij het besluit.",
            "woo_x005f_samenvatting": "Woo-besluit kermis",
            "woo_x005f_categorie": "Woo-verzoeken en -besluiten",
            "woo_x005f_publicatiedatum": "2024-11-05T08:00:00Z",
            "vti_x005f_nexttolasttimemodified": "2024-11-06T10:00:00Z",
        },
        "files": [
            ("9a000000-0000-4000-8000-000000000021", "besluit-kermis.pdf", "woo_besluit"),
            ("9a000000-0000-4000-8000-000000000022", "inventaris-kermis.pdf", "woo_inventarisatielijst"),
        ],
    },
    {
        "UniqueId": "5f0d8c1e-0a4b-4f4e-9d2c-000000000003",
        "Name": "Convenant 2024-03",
        "properties": {
            "woo_x005f_titel": "Convenant wijkveiligheid",
            "woo_x005f_beschrijving": "",
            "woo_x005f_samenvatting": "",
            "woo_x005f_categorie": "Convenanten",
            "vti_x005f_nexttolasttimemodified": "2024-12-01T12:00:00Z",
        },
        "files": [],
    },
]


class SharepointFake(Fake):
    """SharePoint: a token endpoint, /Web/GetFolderByServerRelativePath(...)/folders, and per folder and
    file their Properties, a folder's Files and a file's `$value`."""

    routes = [
        ("POST", r"/oauth2/token", "token"),
        ("GET", r"/Web/GetFolderByServerRelativePath\(decodedurl='/WOO/Publications'\)/folders", "folders"),
        ("GET", r"/Web/GetFolderById\('([^']+)'\)/Properties", "folder_properties"),
        ("GET", r"/Web/GetFolderById\('([^']+)'\)/Files", "files"),
        ("GET", r"/Web/GetFileById\('([^']+)'\)/Properties", "file_properties"),
        ("GET", r"/Web/GetFileById\('([^']+)'\)/\$value", "file_value"),
    ]
    file_paths = r"/Web/GetFileById\('[^']+'\)/\$value"
    token_paths = r"/oauth2/token"

    def authorized(self, request: Request) -> bool:
        return request.header("Authorization") == f"Bearer {SHAREPOINT_TOKEN}"

    def token(self, request: Request, match: re.Match) -> Reply:
        return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "access_token": SHAREPOINT_TOKEN}

    def _deferred(self, uri: str) -> dict[str, Any]:
        return {"__deferred": {"uri": uri}}

    def folders(self, request: Request, match: re.Match) -> Reply:
        if not self.authorized(request):
            return 401, {}, {"error": "invalid_token"}
        folder_uri = f"{self.url}/Web/GetFolderById('{{}}')"
        return (
            200,
            {},
            {
                "d": {
                    "results": [
                        {
                            "__metadata": {
                                "id": folder_uri.format(f["UniqueId"]),
                                "uri": folder_uri.format(f["UniqueId"]),
                                "type": "SP.Folder",
                            },
                            "Files": self._deferred(folder_uri.format(f["UniqueId"]) + "/Files"),
                            "Properties": self._deferred(folder_uri.format(f["UniqueId"]) + "/Properties"),
                            "Name": f["Name"],
                            "ServerRelativeUrl": f"/WOO/Publications/{f['Name']}",
                            "UniqueId": f["UniqueId"],
                            "ItemCount": len(f["files"]),
                        }
                        for f in SHAREPOINT_FOLDERS
                    ]
                }
            },
        )

    def folder_properties(self, request: Request, match: re.Match) -> Reply:
        folder = next(f for f in SHAREPOINT_FOLDERS if f["UniqueId"] == match[1])
        return 200, {}, {"d": {"__metadata": {"type": "SP.PropertyValues"}, **folder["properties"]}}

    def files(self, request: Request, match: re.Match) -> Reply:
        folder = next(f for f in SHAREPOINT_FOLDERS if f["UniqueId"] == match[1])
        file_uri = f"{self.url}/Web/GetFileById('{{}}')"
        return (
            200,
            {},
            {
                "d": {
                    "results": [
                        {
                            "__metadata": {"id": file_uri.format(uid), "uri": file_uri.format(uid), "type": "SP.File"},
                            "Properties": self._deferred(file_uri.format(uid) + "/Properties"),
                            "Name": name,
                            "ServerRelativeUrl": f"/WOO/Publications/{folder['Name']}/{name}",
                            "UniqueId": uid,
                            "Length": str(len(pdf_of(uid))),
                        }
                        for uid, name, _ in folder["files"]
                    ]
                }
            },
        )

    def file_properties(self, request: Request, match: re.Match) -> Reply:
        label = next(lbl for f in SHAREPOINT_FOLDERS for uid, _, lbl in f["files"] if uid == match[1])
        return 200, {}, {"d": {"__metadata": {"type": "SP.PropertyValues"}, "document_x005f_label": label}}

    def file_value(self, request: Request, match: re.Match) -> Reply:
        return 200, {"Content-Type": "application/octet-stream"}, pdf_of(match[1])


FAKES: dict[str, type[Fake]] = {
    "xxllnc-zoekendpoint-woo": XxllncZoekFake,
    "xxllnc-suite-woo": XxllncSuiteFake,
    "RX-woo": RxFundamentFake,
    "sharepoint-woo": SharepointFake,
}
