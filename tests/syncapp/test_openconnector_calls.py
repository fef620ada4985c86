"""OpenConnector's synchronizations as it ships them: nested enrichment, conditions on dotted keys, calls' options.

Each fake answers what the shipped configuration asks of it (../shared/conformance/openconnector/configurations/);
what the objects become is derived from OpenConnector's SynchronizationService::fetchExtraDataForObject.
"""
from __future__ import annotations

import base64

import pytest

from contracts.models import SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.configuration import ConfigurationInvalid, bundle_export, bundle_import
from syncapp.models import Object, Source, Synchronization
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


PASSWORD = "suite-password-5521-never-show"


def test_a_source_whose_configuration_has_guzzles_auth_sends_basic_auth_to_its_own_origin_only():
    elsewhere = LoopbackServer(lambda request: (200, {}, {"omschrijving": "Elders"}))
    suite = LoopbackServer(lambda request: (200, {}, {"results": [
        {"identificatie": "Z-1", "zaaktype": f"{elsewhere.url}/zaaktypen/1"}]}))
    with suite, elsewhere:
        # given xxllnc suite's shipped source, as OpenConnector exports it, at a loopback location
        result = bundle_import({
            "sources": [{"name": "Xxllnc suite API", "reference": None, "version": "0.0.0", "location": suite.url,
                         "isEnabled": True, "type": "api", "authorizationHeader": None, "auth": "none",
                         "authorizationPassthroughMethod": "header", "authenticationConfig": [],
                         "configuration": {"auth.0": "suite-user", "auth.1": PASSWORD}, "logRetention": 3600}],
            "registers": [{"reference": "woo", "name": "Woo", "schemas": [
                {"reference": "publicatie", "name": "Publicatie", "schema": {"type": "object"}}]}],
            "synchronizations": [{
                "reference": "zaken", "name": "Zaken", "sourceType": "api", "sourceId": "xxllnc-suite-api",
                "sourceConfig": {"idPosition": "identificatie", "resultsPosition": "results", "endpoint": "/zaken",
                                 "pagination": {"type": "none"},
                                 # a detail on another origin, which must not get the password
                                 "extraDataConfigs": [{"dynamicEndpointLocation": "zaaktype",
                                                       "keyToSetExtraData": "zaaktype"}]},
                "targetType": "register/schema", "targetId": "woo/publicatie",
            }],
        })

        # when it runs
        run = sync_runs.run_start(synchronization=Synchronization.objects.get(reference="zaken"))

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    # then the import moved Guzzle's auth into the source's credentials, and said so
    source = Source.objects.get()
    assert source.credentials == {"type": "basic", "username": "suite-user", "password": PASSWORD}
    assert source.configuration == {}
    assert result.moved == ["sources[0].configuration.auth: moved into sources[0].credentials (basic), sent only to "
                            "the source's own origin"]
    # and the calls to the source carried basic auth, the detail on another origin none
    basic = "Basic " + base64.b64encode(f"suite-user:{PASSWORD}".encode()).decode()
    assert [request.header("Authorization") for request in suite.requests] == [basic]
    assert [request.header("Authorization") for request in elsewhere.requests] == [None]
    assert Object.objects.get().data["zaaktype"] == {"omschrijving": "Elders"}
    assert PASSWORD not in str(bundle_export())


def test_guzzles_auth_in_a_configuration_is_refused_pointing_to_the_credentials_and_digest_is_named():
    # given a source saved with a password in its configuration, as Guzzle takes it
    with pytest.raises(ConfigurationInvalid) as basic:
        bundle_import({"sources": [{"reference": "suite", "type": "api", "location": "http://127.0.0.1:9",
                                    "configuration": {"auth": ["suite-user", PASSWORD]}}]})
    # and one exported from OpenConnector with digest authentication
    with pytest.raises(ConfigurationInvalid) as digest:
        bundle_import({"sources": [{"name": "Suite", "version": "0.0.1", "location": "http://127.0.0.1:9",
                                    "type": "api", "isEnabled": True,
                                    "configuration": {"auth": ["u", PASSWORD, "digest"]}}]})

    # then both are refused with where the password goes, or why not, never showing it
    assert basic.value.problems == [
        "sources[0].configuration.auth: a username and password go in the source's `credentials` (write-only, "
        "encrypted, sent only to the source's own origin), e.g. {\"type\": \"basic\", \"username\": \"...\", "
        "\"password\": \"...\"}; an import from OpenConnector moves them there"]
    assert digest.value.problems == [
        "sources[0].configuration.auth: digest authentication is not supported, only basic"]
    assert PASSWORD not in str(basic.value.problems) + str(digest.value.problems)
    assert not Source.objects.exists()


def test_a_result_that_is_no_object_fails_its_object_naming_the_nested_entry_as_openconnector_fails_it():
    def answer(request: Request):
        if request.path == "/zaken":
            return 200, {}, {"results": [{"identificatie": "Z-1"}]}
        return 200, {}, {"results": ["https://elsewhere.example/documenten/1"]}

    server = LoopbackServer(answer)
    with server:
        # given a nested entry over a list of URLs, not of objects
        sync = import_api_synchronization(location=server.url, source_config={
            "idPosition": "identificatie", "resultsPosition": "results", "endpoint": "/zaken",
            "pagination": {"type": "none"},
            "extraDataConfigs": [{"staticEndpoint": "/zaken/{{ originId }}/documenten", "keyToSetExtraData": "docs",
                                  "resultsLocation": "results",
                                  "extraDataConfigPerResult": {"dynamicEndpointLocation": "url"}}],
        })

        # when it runs
        run = sync_runs.run_start(synchronization=sync)

    # then the object fails, saying which result of which entry
    run.refresh_from_db()
    assert (run.status, run.failed, run.enrichments_failed) == ("partial", 1, 1)
    contract = SynchronizationContract.objects.get(synchronization=sync)
    assert "extraDataConfigs[0].extraDataConfigPerResult: result 0 is a str, not an object to enrich" in (
        contract.last_error)


class XxllncV1:
    """xxllnc's v1 API: cases found with a ZQL query, the documents of a case and its case type."""

    def __init__(self) -> None:
        self.server = LoopbackServer(self.handle)

    def handle(self, request: Request):
        if request.path == "/case":
            return 200, {}, {"result": {"instance": {"rows": [
                {"reference": "c-1", "instance": {"casetype": {"reference": "ct-9"}}}]}}}
        if request.path == "/case/c-1/document":
            return 200, {}, {"result": {"instance": {"rows": [{"reference": "d-1"}]}}}
        if request.path == "/casetype/ct-9":
            return 200, {}, {"result": {"instance": {"title": "Melding"}}}
        return 404, {}, {"error": "unknown path"}


def test_unset_config_key_leaves_a_query_parameter_out_of_one_detail_call_however_the_query_is_written():
    xxllnc = XxllncV1()
    with xxllnc.server:
        # given xxllnc-zgw's shipped synchronization, its zql written inside `query`
        sync = import_api_synchronization(location=xxllnc.server.url, source_config={
            "idPosition": "reference", "resultsPosition": "result.instance.rows", "endpoint": "/case",
            "query": {"zql": "select {} from case", "rows_per_page": "10"}, "pagination": {"type": "none"},
            "extraDataConfigs": [
                {"staticEndpoint": "/case/{{ originId }}/document", "mergeExtraData": "true",
                 "keyToSetExtraData": "documents"},
                {"staticEndpoint": "/casetype/{{ originId }}", "endpointIdLocation": "instance.casetype.reference",
                 "mergeExtraData": "true", "keyToSetExtraData": "casetype", "unsetConfigKey": "query.zql"},
            ],
        })

        # when it runs
        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    # then the case type was asked by the id at endpointIdLocation, without the zql the others carry
    queries = {request.path: request.query for request in xxllnc.server.requests}
    assert queries["/casetype/ct-9"] == {"rows_per_page": "10"}
    assert queries["/case/c-1/document"] == queries["/case"] == {"zql": "select {} from case", "rows_per_page": "10"}
    case = Object.objects.get().data
    assert case["casetype"] == {"result": {"instance": {"title": "Melding"}}}
    assert case["documents"]["result"]["instance"]["rows"] == [{"reference": "d-1"}]
