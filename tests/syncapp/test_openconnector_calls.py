"""OpenConnector's synchronizations as it ships them: nested enrichment, conditions on dotted keys, calls' options.

Each fake answers what the shipped configuration asks of it (../shared/conformance/openconnector/configurations/);
what the objects become is derived from OpenConnector's SynchronizationService::fetchExtraDataForObject.
"""
from __future__ import annotations

import pytest

from syncapp import runs as sync_runs
from syncapp.models import Object
from tests.factories import import_api_synchronization
from tests.loopback import LoopbackServer, Request

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


class SharePoint:
    """The folders of a SharePoint list, each with deferred Properties and Files, as SharePoint's REST API answers."""

    def __init__(self) -> None:
        self.server = LoopbackServer(self.handle)

    def deferred(self, path: str) -> dict:
        return {"__deferred": {"uri": f"{self.server.url}{path}"}}

    def handle(self, request: Request):
        if request.path.endswith("/folders"):
            return 200, {}, {"d": {"results": [
                {"UniqueId": "f-1", "Name": "Besluit 1", "Properties": self.deferred("/props/f-1"),
                 "Files": self.deferred("/files/f-1")},
            ]}}
        if request.path == "/props/f-1":
            return 200, {}, {"Titel": "Besluit over de haven", "Categorie": "besluit"}
        if request.path == "/files/f-1":
            return 200, {}, {"d": {"results": [
                {"Name": "besluit.pdf", "ServerRelativeUrl": "/WOO/besluit.pdf",
                 "Properties": self.deferred("/file-props/besluit")},
                {"Name": "bijlage.pdf", "ServerRelativeUrl": "/WOO/bijlage.pdf",
                 "Properties": self.deferred("/file-props/bijlage")},
            ]}}
        if request.path.startswith("/file-props/"):
            name = request.path.rsplit("/", 1)[1]
            return 200, {}, {"Publicatiedatum": "2024-05-01", "Omschrijving": name}
        return 404, {}, {"error": "unknown path"}


# sharepoint-woo/synchronizations/sharepoint-publications.json, its dotted keys written out as applyConfigDot does.
SHAREPOINT_SOURCE_CONFIG = {
    "idPosition": "UniqueId",
    "resultsPosition": "d.results",
    "endpoint": "/Web/GetFolderByServerRelativePath(decodedurl='/WOO/Publications')/folders",
    "usesPagination": "false",
    "extraDataConfigs": [
        {"dynamicEndpointLocation": "Properties.__deferred.uri", "mergeExtraData": "true"},
        {"dynamicEndpointLocation": "Files.__deferred.uri", "mergeExtraData": "true", "keyToSetExtraData": "fileUrls",
         "resultsLocation": "d.results",
         "extraDataConfigPerResult": {"dynamicEndpointLocation": "Properties.__deferred.uri",
                                      "mergeExtraData": "true"}},
    ],
}


def test_sharepoint_folders_get_their_properties_and_each_file_its_own_merged_in_as_openconnector_does():
    sharepoint = SharePoint()
    with sharepoint.server:
        # given SharePoint's shipped synchronization
        sync = import_api_synchronization(location=sharepoint.server.url, source_config=SHAREPOINT_SOURCE_CONFIG)

        # when it runs
        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    folder = Object.objects.get().data
    # then the folder's properties are merged into it
    assert (folder["Name"], folder["Titel"], folder["Categorie"]) == ("Besluit 1", "Besluit over de haven", "besluit")
    # and each file keeps its own keys with its properties merged in (mergeExtraData of the nested entry)
    assert [(file["Name"], file["ServerRelativeUrl"], file["Omschrijving"], file["Publicatiedatum"])
            for file in folder["fileUrls"]] == [
        ("besluit.pdf", "/WOO/besluit.pdf", "besluit", "2024-05-01"),
        ("bijlage.pdf", "/WOO/bijlage.pdf", "bijlage", "2024-05-01"),
    ]


class Zaken:
    """A ZGW-like API: cases, the documents of a case, each document's detail and the detail's author."""

    def __init__(self) -> None:
        self.server = LoopbackServer(self.handle)

    def handle(self, request: Request):
        if request.path == "/zaken":
            return 200, {}, {"results": [{"identificatie": "Z-1", "omschrijving": "Haven"}]}
        if request.path == "/zaken/Z-1/informatieobjecten":
            return 200, {}, {"count": 2, "results": [{"identificatie": "D-1", "rol": "besluit"},
                                                     {"identificatie": "D-2", "rol": "bijlage"}]}
        if request.path.startswith("/informatieobjecten/"):
            document = request.path.rsplit("/", 1)[1]
            return 200, {}, {"titel": f"Document {document}", "auteurs": [{"id": f"A-{document}"}]}
        if request.path.startswith("/zaken/Z-1/auteurs/"):
            return 200, {}, {"naam": f"Auteur van {request.path.rsplit('/', 1)[1]}"}
        return 404, {}, {"error": "unknown path"}


def test_nested_results_are_replaced_by_their_detail_or_keyed_as_the_nested_entry_says():
    zaken = Zaken()
    with zaken.server:
        # given xxllnc suite's shipped shape (each document replaced by its detail), a second level nested in it
        # that keys each detail's author without merging, and the same list kept with each detail merged in
        sync = import_api_synchronization(location=zaken.server.url, source_config={
            "idPosition": "identificatie", "resultsPosition": "results", "endpoint": "/zaken",
            "usesPagination": "false",
            "extraDataConfigs": [
                {"staticEndpoint": "/zaken/{{ originId }}/informatieobjecten", "mergeExtraData": "true",
                 "keyToSetExtraData": "files", "resultsLocation": "results",
                 "extraDataConfigPerResult": {
                     "staticEndpoint": "/informatieobjecten/{{ subObjectId }}", "subObjectId": "identificatie",
                 }},
                {"staticEndpoint": "/zaken/{{ originId }}/informatieobjecten", "keyToSetExtraData": "documenten",
                 "resultsLocation": "results",
                 "extraDataConfigPerResult": {
                     "staticEndpoint": "/informatieobjecten/{{ subObjectId }}", "subObjectId": "identificatie",
                     "keyToSetExtraData": "detail", "mergeExtraData": True,
                 }},
                {"staticEndpoint": "/zaken/{{ originId }}/informatieobjecten", "keyToSetExtraData": "auteurs",
                 "resultsLocation": "results",
                 "extraDataConfigPerResult": {
                     "staticEndpoint": "/informatieobjecten/{{ subObjectId }}", "subObjectId": "identificatie",
                     "keyToSetExtraData": "document", "resultsLocation": "auteurs",
                     "extraDataConfigPerResult": {
                         # originId is the case's, handed down as OpenConnector hands it
                         "staticEndpoint": "/zaken/{{ originId }}/auteurs/{{ subObjectId }}", "subObjectId": "id",
                         "mergeExtraData": "true",
                     },
                 }},
            ],
        })

        # when it runs
        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    zaak = Object.objects.get().data
    # then each document is its detail alone (no mergeExtraData on the nested entry)
    d1 = {"titel": "Document D-1", "auteurs": [{"id": "A-D-1"}]}
    d2 = {"titel": "Document D-2", "auteurs": [{"id": "A-D-2"}]}
    assert zaak["files"] == [d1, d2]
    # and a keyed, merged nested entry keeps the document with its detail at the key
    assert zaak["documenten"] == [{"identificatie": "D-1", "rol": "besluit", "detail": d1},
                                  {"identificatie": "D-2", "rol": "bijlage", "detail": d2}]
    # and a keyed nested entry without merging makes each document an object holding only the key, there the
    # list at its resultsLocation, each of whose items got its own detail merged in a level deeper
    assert zaak["auteurs"] == [{"document": [{"id": "A-D-1", "naam": "Auteur van A-D-1"}]},
                               {"document": [{"id": "A-D-2", "naam": "Auteur van A-D-2"}]}]


def xxllnc_case(number: int, **values) -> dict:
    return {"id": f"case-{number}", "type": "case", "values": {
        "case.subject": f"Zaak {number}", "attribute.woo_categorie": ["besluit"],
        "attribute.woo_publicatiedatum": "2024-05-01", **values,
    }}


# xxllnc-zoekendpoint-woo/synchronizations/xxllnc-zoek-endpoint-to-publications.json
XXLLNC_CONDITIONS = {"and": [{"!!": {"var": "values.attribute&#46;woo_categorie"}},
                             {"!!": {"var": "values.case&#46;subject"}},
                             {"!!": {"var": "values.attribute&#46;woo_publicatiedatum"}}]}


def test_the_conditions_on_dotted_keys_of_xxllncs_zoek_endpoint_keep_the_published_cases():
    cases = [xxllnc_case(1), xxllnc_case(2, **{"attribute.woo_publicatiedatum": None}),
             xxllnc_case(3, **{"attribute.woo_categorie": []}), xxllnc_case(4)]
    server = LoopbackServer(lambda request: (200, {}, {"result": cases}))
    with server:
        # given the shipped synchronization's source configuration and conditions
        sync = import_api_synchronization(location=server.url, conditions=XXLLNC_CONDITIONS, source_config={
            "idPosition": "id", "resultsPosition": "result", "endpoint": "/public_search/x/search",
            "headers": {}, "query": {}, "pagination": {"type": "none"},
        })

        # when it runs
        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    # then only the cases with a category, a subject and a publication date are kept
    assert sorted(Object.objects.values_list("data__id", flat=True)) == ["case-1", "case-4"]
    assert (run.created, run.filtered) == (2, 2)
