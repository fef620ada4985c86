"""Pagination (SYNC.md section 4): every type, first as pure functions, then whole runs against loopback
servers shaped like well-known public APIs, each syncing exactly the records the server holds."""
from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import pytest

from contracts.models import RunPage, SynchronizationContract
from syncapp import runs as sync_runs
from syncapp.errors import PaginationError
from syncapp.models import Mapping, Object, Synchronization
from syncapp.pagination import (
    PageRequest,
    PaginationConfig,
    first_page_request,
    link_header_next,
    next_page_request,
    page_repeats_previous,
    pagination_from_source_config,
)
from syncapp.sample_source import generate_animals
from tests.conftest import zoo_bundle
from tests.helpers import import_zoo
from tests.loopback import LoopbackServer, Request

PAGE_SIZE = 10
# One size that ends on a full page, one that ends on a partial page.
SIZES = [30, 27]


def config(**raw: Any) -> PaginationConfig:
    return pagination_from_source_config({"pagination": raw})


def after(cfg: PaginationConfig, current: PageRequest, body: Any, *, count: int, headers=None, **kwargs):
    return next_page_request(
        config=cfg, current=current, body=body, object_count=count, fingerprint=f"fp-{current.params}-{count}",
        headers=headers, **kwargs,
    )


# ---------------------------------------------------------------------------------------------
# Settings


def test_every_pagination_type_of_the_spec_is_accepted():
    kinds = [config(type=kind).type for kind in ("page", "offset", "cursor", "next", "link_header", "none", "auto")]

    assert kinds == ["page", "offset", "cursor", "next", "link_header", "none", "auto"]


def test_openconnector_names_are_understood():
    cfg = pagination_from_source_config({"usesPagination": "true", "paginationQuery": "p", "maxPages": "7"})

    assert (cfg.type, cfg.page_param, cfg.max_pages) == ("auto", "p", 7)


@pytest.mark.parametrize("value", [False, "false", "0"])
def test_uses_pagination_false_means_one_request(value):
    assert pagination_from_source_config({"usesPagination": value, "pagination": {"type": "page"}}).type == "none"


def test_without_max_pages_the_service_wide_safety_limit_applies(settings):
    settings.SYNC_DEFAULT_MAX_PAGES = 1234

    assert pagination_from_source_config({}).max_pages == 1234


@pytest.mark.parametrize(
    ("source_config", "message"),
    [
        ({"pagination": {"type": "scroll"}}, "pagination.type must be one of"),
        ({"pagination": {"type": "offset", "limit": 0}}, "pagination.limit must be at least 1"),
        ({"pagination": {"type": "page", "pageSizeParam": "per_page"}}, "pagination.pageSize is needed"),
        ({"pagination": {"type": "cursor", "cursorPth": "meta.next"}}, "pagination.cursorPth is not a pagination"),
        ({"pagination": {"type": "offset", "offsetParam": "n", "limitParam": "n"}}, "must differ"),
        ({"pagination": {"type": "page", "stopOnEmptyPage": False}}, "needs pagination.totalPath"),
        ({"pagination": {"type": "page", "stopOnEmptyPage": "sometimes"}}, "stopOnEmptyPage must be true or false"),
        ({"maxPages": 0}, "maxPages must be at least 1"),
        ({"pagination": ["page"]}, "pagination must be an object"),
    ],
)
def test_bad_pagination_settings_are_refused_naming_the_setting(source_config, message):
    with pytest.raises(PaginationError, match=message):
        pagination_from_source_config(source_config)


# ---------------------------------------------------------------------------------------------
# The next request, as pure functions


def test_page_numbers_start_where_configured_and_send_the_page_size():
    cfg = config(type="page", pageParam="p", startPage=0, pageSizeParam="size", pageSize=25)

    first = first_page_request(config=cfg, url="http://x/a?status=active", params={})
    second = after(cfg, first, {"items": [1] * 25}, count=25)

    assert (first.url, first.params) == ("http://x/a", {"status": "active", "p": 0, "size": 25})
    assert second.params == {"status": "active", "p": 1, "size": 25}


def test_page_numbers_stop_at_the_total_at_an_empty_page_or_when_has_more_is_false():
    cfg = config(type="page", totalPath="count")
    first = first_page_request(config=cfg, url="http://x/a", params={})

    assert after(cfg, first, {"count": 10}, count=10) is None
    assert after(cfg, first, {"count": 11}, count=10) is not None
    assert after(cfg, first, {}, count=0) is None
    assert after(config(type="page", hasMorePath="meta.more"), first, {"meta": {"more": False}}, count=10) is None


def test_offsets_advance_by_the_objects_received_so_a_capped_limit_skips_nothing():
    cfg = config(type="offset", limit=100, totalPath="total")
    first = first_page_request(config=cfg, url="http://x/a", params={})

    second = after(cfg, first, {"total": 120}, count=50)  # the server caps the limit at 50

    assert first.params == {"offset": 0, "limit": 100}
    assert second.params == {"offset": 50, "limit": 100}
    assert after(cfg, second, {"total": 120}, count=50).params["offset"] == 100


def test_offsets_stop_on_a_short_page_when_the_source_gives_no_total():
    cfg = config(type="offset", offsetParam="skip", limitParam="top", limit=10)
    first = first_page_request(config=cfg, url="http://x/a", params={})

    assert after(cfg, first, [], count=10).params == {"skip": 10, "top": 10}
    assert after(cfg, first, [], count=9) is None


def test_a_cursor_is_read_by_dot_path_and_sent_as_a_parameter():
    cfg = config(type="cursor", cursorPath="meta.next_cursor", cursorParam="after")
    first = first_page_request(config=cfg, url="http://x/a?q=1", params={})

    second = after(cfg, first, {"meta": {"next_cursor": "abc"}}, count=3)

    assert first.params == {"q": "1"}
    assert second.params == {"q": "1", "after": "abc"}
    assert after(cfg, second, {"meta": {"next_cursor": None}}, count=3) is None
    assert after(cfg, second, {"meta": {"next_cursor": "def", "has_more": False}}, count=3) is None


def test_a_repeated_cursor_stops_with_an_error():
    cfg = config(type="cursor", cursorPath="next")
    second = after(cfg, first_page_request(config=cfg, url="http://x/a", params={}), {"next": "abc"}, count=1)

    with pytest.raises(PaginationError, match="repeats its cursor 'abc'"):
        after(cfg, second, {"next": "abc"}, count=1)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"next": "http://x/a?page=2"}, None),
        ({"links": {"next": "http://x/a?page=2"}}, None),
        ({"_links": {"next": {"href": "/a?page=2"}}}, None),
        ({"@odata.nextLink": "http://x/a?$skiptoken=2"}, None),
        ({"paging": {"following": "?page=2"}}, "paging.following"),
    ],
)
def test_next_links_are_found_at_the_usual_places_or_the_configured_path(body, path):
    cfg = config(type="next", **({"nextPath": path} if path else {}))

    following = after(cfg, first_page_request(config=cfg, url="http://x/a", params={}), body, count=1)

    assert following.url.startswith("http://x/a?")
    assert following.mode == "next"


def test_a_next_link_gets_back_the_endpoint_query_it_leaves_out_but_not_the_page_position():
    cfg = config(type="auto")
    first = first_page_request(config=cfg, url="http://x/a?tenant=zoo&page=1", params={})

    following = after(cfg, first, {"next": "/a?cursor=xyz"}, count=5)

    assert following.url == "http://x/a?cursor=xyz"
    assert following.params == {"tenant": "zoo"}


def test_a_next_link_never_keeps_a_secret_query_parameter():
    cfg = config(type="next")
    first = first_page_request(config=cfg, url="http://x/a", params={})

    following = after(cfg, first, {"next": "http://x/a?page=2&api_key=SECRET"}, count=5,
                      drop_params=frozenset({"api_key"}))

    assert "SECRET" not in str(following.to_json())


def test_a_repeated_next_link_stops_with_an_error_also_after_other_pages():
    cfg = config(type="next")
    page1 = first_page_request(config=cfg, url="http://x/a", params={})
    page2 = after(cfg, page1, {"next": "http://x/a?page=2"}, count=1)
    page3 = after(cfg, page2, {"next": "http://x/a?page=3"}, count=1)

    with pytest.raises(PaginationError, match="repeats its next link http://x/a\\?page=2"):
        after(cfg, page3, {"next": "http://x/a?page=2"}, count=1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('<https://api.x/a?page=2>; rel="next", <https://api.x/a?page=9>; rel="last"', "https://api.x/a?page=2"),
        ('<https://api.x/a?page=1>; rel="prev", <https://api.x/a?page=3>; rel=next', "https://api.x/a?page=3"),
        ('<https://api.x/a?page=3>; title="more"; rel="next last"', "https://api.x/a?page=3"),
        ('<https://api.x/a?page=9>; rel="last"', None),
        ("", None),
    ],
)
def test_the_next_target_of_a_link_header_is_found(header, expected):
    assert link_header_next({"Link": header}) == expected


def test_auto_prefers_a_next_link_then_a_link_header_then_page_numbers():
    cfg = config(type="auto")
    first = first_page_request(config=cfg, url="http://x/a", params={})

    by_body = after(cfg, first, {"next": "/a?n=2"}, count=1, headers={"Link": '</a?h=2>; rel="next"'})
    by_header = after(cfg, first, [1], count=1, headers={"link": '</a?h=2>; rel="next"'})
    by_number = after(cfg, first, [1], count=1)

    assert (by_body.mode, by_header.mode, by_number.mode) == ("next", "link", "page")
    assert by_header.url == "http://x/a?h=2"
    assert by_number.params == {"page": 2}


def test_auto_does_not_take_a_page_number_or_token_in_next_for_a_link():
    cfg = config(type="auto")
    first = first_page_request(config=cfg, url="http://x/a", params={})

    following = after(cfg, first, {"next": 2, "data": [1]}, count=1)

    assert following.mode == "page"


def test_under_auto_a_page_served_twice_ends_the_run_and_under_page_it_is_an_error():
    request = PageRequest(url="http://x/a", params={"page": 2}, page=2, previous_fingerprint="same", mode="page")

    assert page_repeats_previous(config=config(type="auto"), current=request, fingerprint="same") is True
    assert page_repeats_previous(config=config(type="auto"), current=request, fingerprint="other") is False
    with pytest.raises(PaginationError, match="page 2 at http://x/a repeats the page before it"):
        page_repeats_previous(config=config(type="page"), current=request, fingerprint="same")


def test_two_empty_pages_in_a_row_are_not_taken_for_a_loop():
    cfg = config(type="next")
    page2 = after(cfg, first_page_request(config=cfg, url="http://x/a", params={}), {"next": "/a?p=2"}, count=0)

    assert page2.previous_fingerprint is None
    assert page_repeats_previous(config=cfg, current=page2, fingerprint="fp-{}-0") is False


def test_a_page_request_survives_its_json_form():
    cfg = config(type="offset", limit=5)
    request = after(cfg, first_page_request(config=cfg, url="http://x/a?k=v", params={}), {}, count=5)

    assert PageRequest.from_json(request.to_json()) == request


def test_none_asks_for_one_page_only():
    cfg = config(type="none")

    assert after(cfg, first_page_request(config=cfg, url="http://x/a", params={}), {"next": "/b"}, count=9) is None


# ---------------------------------------------------------------------------------------------
# Whole runs against loopback servers shaped like well-known public APIs


def records(count: int) -> list[dict]:
    return generate_animals(count=count, seed=5)


def chunk(items: list, start: int, size: int) -> list:
    return items[start:start + size]


def drf_api(server: LoopbackServer, items: list[dict]):
    """Django REST framework: `{count, next, previous, results}`, absolute links, 404 past the last page."""

    def handler(request: Request):
        page, size = int(request.query.get("page", 1)), int(request.query.get("page_size", PAGE_SIZE))
        if page > max(1, math.ceil(len(items) / size)):
            return 404, {}, {"detail": "Invalid page."}
        rest = {k: v for k, v in request.query.items() if k != "page"}

        def link(number: int) -> str:
            return f"{server.url}{request.path}?{urlencode({**rest, 'page': number})}"

        return 200, {}, {
            "count": len(items),
            "next": link(page + 1) if page * size < len(items) else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": chunk(items, (page - 1) * size, size),
        }

    return handler


def hal_api(server: LoopbackServer, items: list[dict]):
    """HAL (Spring Data REST and friends): `_embedded.animals`, `_links.next.href`, the filter left out."""

    def handler(request: Request):
        page = int(request.query.get("page", 0))
        links = {"self": {"href": f"{request.path}?page={page}"}}
        if (page + 1) * PAGE_SIZE < len(items):
            links["next"] = {"href": f"{request.path}?page={page + 1}"}  # relative, and without the other parameters
        return 200, {"Content-Type": "application/hal+json"}, {
            "_embedded": {"animals": chunk(items, page * PAGE_SIZE, PAGE_SIZE)},
            "_links": links,
            "page": {"size": PAGE_SIZE, "totalElements": len(items), "number": page},
        }

    return handler


def odata_api(server: LoopbackServer, items: list[dict]):
    """OData v4 (Microsoft Graph, SAP): `value` and an absolute `@odata.nextLink` with a skip token."""

    def handler(request: Request):
        skip = int(request.query.get("$skiptoken", 0))
        body: dict[str, Any] = {
            "@odata.context": f"{server.url}/$metadata#Animals",
            "value": chunk(items, skip, PAGE_SIZE),
        }
        if skip + PAGE_SIZE < len(items):
            following = urlencode({**request.query, "$skiptoken": skip + PAGE_SIZE})
            body["@odata.nextLink"] = f"{server.url}{request.path}?{following}"
        return 200, {"Content-Type": "application/json; odata.metadata=minimal"}, body

    return handler


def link_header_api(server: LoopbackServer, items: list[dict]):
    """GitHub style: a bare list, the next page in `Link: <...>; rel="next"`."""

    def handler(request: Request):
        page = int(request.query.get("page", 1))
        headers = {}
        pages = max(1, math.ceil(len(items) / PAGE_SIZE))
        links = []
        if page < pages:
            links.append(f'<{server.url}{request.path}?{urlencode({**request.query, "page": page + 1})}>; rel="next"')
        links.append(f'<{server.url}{request.path}?{urlencode({**request.query, "page": pages})}>; rel="last"')
        headers["Link"] = ", ".join(links)
        return 200, headers, chunk(items, (page - 1) * PAGE_SIZE, PAGE_SIZE)

    return handler


def offset_api(server: LoopbackServer, items: list[dict]):
    """An offset/limit API with `total` that caps the limit at PAGE_SIZE."""

    def handler(request: Request):
        offset, limit = int(request.query.get("offset", 0)), min(int(request.query.get("limit", PAGE_SIZE)), PAGE_SIZE)
        return 200, {}, {"total": len(items), "offset": offset, "limit": limit,
                         "items": chunk(items, offset, limit)}

    return handler


def cursor_api(server: LoopbackServer, items: list[dict]):
    """A cursor API (Stripe, Slack style): `data`, `meta.next_cursor` (opaque), `meta.has_more`."""

    def handler(request: Request):
        start = int(request.query["cursor"].removeprefix("c")) if "cursor" in request.query else 0
        more = start + PAGE_SIZE < len(items)
        return 200, {}, {"data": chunk(items, start, PAGE_SIZE),
                         "meta": {"next_cursor": f"c{start + PAGE_SIZE}" if more else None, "has_more": more}}

    return handler


def xml_api(server: LoopbackServer, items: list[dict]):
    """An XML API with namespaces, the total as an attribute and page numbers."""

    def handler(request: Request):
        page = int(request.query.get("page", 1))
        rows = "".join(
            f'<z:animal id="{item["id"]}"><z:name>{item["name"]}</z:name><z:species>{item["species"]}'
            f'</z:species><z:legs>{item["legs"]}</z:legs><!-- checked --></z:animal>'
            for item in chunk(items, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<z:animals xmlns:z="urn:zoo" total="{len(items)}" page="{page}">{rows}</z:animals>'
        )
        return 200, {"Content-Type": "application/xml; charset=utf-8"}, body

    return handler


API_SHAPES = {
    "drf-page-numbers": (drf_api, {"pagination": {"type": "page", "pageSizeParam": "page_size",
                                                  "pageSize": PAGE_SIZE, "totalPath": "count"}}),
    "drf-next-links": (drf_api, {"resultsPosition": "results", "pagination": {"type": "next"}}),
    "hal": (hal_api, {"resultsPosition": "_embedded.animals",
                      "pagination": {"type": "next", "nextPath": "_links.next.href"}}),
    "odata-auto": (odata_api, {"pagination": {"type": "auto"}}),
    "link-header": (link_header_api, {"resultsPosition": "_root", "pagination": {"type": "link_header"}}),
    "link-header-auto": (link_header_api, {}),
    "offset-limit": (offset_api, {"pagination": {"type": "offset", "limit": 50, "totalPath": "total"}}),
    "cursor": (cursor_api, {"pagination": {"type": "cursor", "cursorPath": "meta.next_cursor",
                                           "hasMorePath": "meta.has_more"}}),
}


def prepared(server_url: str, **source_config) -> Synchronization:
    """The zoo synchronization pointed at a server, with all objects passing the conditions."""
    sync = import_zoo(zoo_bundle(location=server_url))
    sync.source_config = source_config
    sync.conditions = {}
    sync.save()
    return sync


def synced_ids(sync: Synchronization) -> list[str]:
    contracts = SynchronizationContract.objects.filter(synchronization=sync, status="synced")
    return sorted(contracts.values_list("origin_id", flat=True))


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("shape", list(API_SHAPES))
def test_a_run_syncs_exactly_the_records_the_api_holds(shape, count):
    api, source_config = API_SHAPES[shape]
    items = records(count)
    with LoopbackServer(lambda request: (500, {}, {})) as server:
        server.handler = api(server, items)
        sync = prepared(server.url, endpoint="/animals?tenant=zoo", query={"lang": "en"}, **source_config)

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert (run.found, run.created, Object.objects.count()) == (count, count, count)
    assert synced_ids(sync) == sorted(str(item["id"]) for item in items)
    assert run.pages_fetched == len(server.requests) == math.ceil(count / PAGE_SIZE)
    # The endpoint's and the configuration's query parameters reach every page, whatever the links say.
    assert all(request.query.get("tenant") == "zoo" and request.query.get("lang") == "en"
               for request in server.requests)


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
@pytest.mark.parametrize("count", [30, 21])  # 21: the last page holds a single <animal>
def test_an_xml_api_is_synced_with_openconnector_shaped_dicts(count):
    items = records(count)
    with LoopbackServer(lambda request: (500, {}, {})) as server:
        server.handler = xml_api(server, items)
        sync = prepared(
            server.url, endpoint="/animals.xml", resultsPosition="animal", idPosition="@attributes.id",
            pagination={"type": "page", "totalPath": "@attributes.total"},
        )
        sync.source_target_mapping = Mapping.objects.create(
            reference="animal-xml", mapping={"name": "name.#text", "species": "species.#text", "legs": "legs.#text"},
            cast={"legs": "int"},
        )
        sync.save()

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert (run.found, run.created) == (count, count)
    assert synced_ids(sync) == sorted(str(item["id"]) for item in items)
    stored = {(obj["name"], obj["legs"]) for obj in Object.objects.values_list("data", flat=True)}
    assert stored == {(item["name"], int(item["legs"])) for item in items}


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_pagination_none_reads_one_page_even_when_the_body_links_further():
    items = records(30)
    with LoopbackServer(lambda request: (500, {}, {})) as server:
        server.handler = drf_api(server, items)
        sync = prepared(server.url, endpoint="/animals", usesPagination="false")

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert (run.status, run.found, len(server.requests)) == ("succeeded", PAGE_SIZE, 1)


# ---------------------------------------------------------------------------------------------
# Loops and limits


@pytest.fixture
def synced_once(transactional_db, in_process_tasks):
    """A synchronization that has synced 30 records from a DRF API, and that API's server."""
    items = records(30)
    with LoopbackServer(lambda request: (500, {}, {})) as server:
        server.handler = drf_api(server, items)
        sync = prepared(server.url, endpoint="/animals", maxPages=6, pagination={"type": "next"})
        first = sync_runs.run_start(synchronization=sync)
        first.refresh_from_db()
        assert first.status == "succeeded", first.error_message
        server.requests.clear()
        yield sync, server, items


def assert_nothing_lost(sync: Synchronization, items: list[dict]) -> None:
    assert Object.objects.count() == len(items)
    assert synced_ids(sync) == sorted(str(item["id"]) for item in items)
    assert not SynchronizationContract.objects.filter(target_last_action="delete").exists()


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_server_that_repeats_its_next_link_forever_fails_the_run_within_max_pages(synced_once):
    sync, server, items = synced_once
    server.handler = lambda request: (200, {}, {
        "next": f"{server.url}/animals?page=2", "results": chunk(items, (int(request.query.get("page", 1)) - 1) * 5, 5),
    })

    run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert f"repeats its next link {server.url}/animals?page=2" in run.error_message
    assert len(server.requests) <= 6
    assert_nothing_lost(sync, items)


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_server_that_serves_the_same_page_under_ever_new_links_fails_the_run(synced_once):
    sync, server, items = synced_once
    server.handler = lambda request: (200, {}, {
        "next": f"{server.url}/animals?page={int(request.query.get('page', 1)) + 1}", "results": items[:5],
    })

    run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert "repeats the page before it" in run.error_message
    assert len(server.requests) == 2
    assert_nothing_lost(sync, items)


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_server_with_endless_fresh_pages_ends_the_run_partial_at_max_pages_deleting_nothing(synced_once):
    sync, server, items = synced_once
    server.handler = lambda request: (200, {}, {
        "next": f"{server.url}/animals?page={int(request.query.get('page', 1)) + 1}",
        "results": [items[(int(request.query.get("page", 1)) - 1) % len(items)]],
    })

    run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "partial"
    assert "maxPages (6)" in run.error_message
    assert run.pages_fetched == len(server.requests) == 6
    assert_nothing_lost(sync, items)


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_a_cursor_api_that_repeats_its_cursor_fails_the_run():
    items = records(10)

    def handler(request: Request):
        return 200, {}, {"data": items[5:] if "cursor" in request.query else items[:5], "meta": {"next_cursor": "same"}}

    with LoopbackServer(handler) as server:
        sync = prepared(
            server.url, endpoint="/animals", pagination={"type": "cursor", "cursorPath": "meta.next_cursor"}
        )

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert "repeats its cursor 'same'" in run.error_message
    assert len(server.requests) == 2


@pytest.mark.usefixtures("transactional_db", "in_process_tasks")
def test_the_page_records_of_a_run_are_plain_json_that_resumes_the_run():
    items = records(25)
    with LoopbackServer(lambda request: (500, {}, {})) as server:
        server.handler = offset_api(server, items)
        sync = prepared(server.url, endpoint="/animals", pagination={"type": "offset", "limit": 10})

        run = sync_runs.run_start(synchronization=sync)

    read = RunPage.objects.filter(run=run).exclude(status="skipped").order_by("number")  # not those fetched ahead
    requests = [PageRequest.from_json(page.request) for page in read]
    assert [request.params["offset"] for request in requests] == [0, 10, 20]
    assert [request.mode for request in requests] == ["offset"] * 3
