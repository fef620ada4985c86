"""The sample zoo source: generated records, the three API shapes, mutations and the request log."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command

from syncapp.sample_source import MAX_PAGE_SIZE, SampleSource, generate_animals, main

PROJECT_DIR = Path(__file__).resolve().parents[2]
TIMEOUT = 10


@pytest.fixture
def make_source() -> Iterator[Callable[..., SampleSource]]:
    """Start sample sources on free ports; stop them all after the test."""
    started: list[SampleSource] = []

    def make(*, count: int = 120, records: list[dict] | None = None, page_size: int = 50) -> SampleSource:
        if records is None:
            records = generate_animals(count=count)
        source = SampleSource(records=records, page_size=page_size).start()
        started.append(source)
        return source

    yield make
    for source in started:
        source.stop()


@pytest.fixture
def source(make_source: Callable[..., SampleSource]) -> SampleSource:
    """Start a sample source with 120 animals and pages of 50."""
    return make_source()


def get(url: str, **params: Any) -> requests.Response:
    return requests.get(url, params=params, timeout=TIMEOUT)


def walk_next_links(url: str) -> tuple[list[dict], int]:
    """Follow `next` links from `url`; return the records and the number of pages fetched."""
    records: list[dict] = []
    pages = 0
    while url:
        response = get(url)
        response.raise_for_status()
        body = response.json()
        records.extend(body["results"])
        pages += 1
        assert pages <= 100, "the next links never end"
        url = body["next"]
    return records, pages


# -- generated records ---------------------------------------------------------------------------------------


def test_generated_animals_are_the_same_for_the_same_seed() -> None:
    assert generate_animals(count=50, seed=3) == generate_animals(count=50, seed=3)


def test_generated_animals_differ_for_another_seed() -> None:
    assert generate_animals(count=50, seed=3) != generate_animals(count=50, seed=4)


def test_generated_animals_are_numbered_from_one_and_have_every_field() -> None:
    animals = generate_animals(count=300)

    assert [animal["id"] for animal in animals] == list(range(1, 301))
    for animal in animals:
        assert set(animal) == {
            "id", "name", "species", "status", "legs", "weightKg", "born", "keeper", "tags", "updatedAt",
        }
        assert animal["status"] in {"active", "retired"}
        assert isinstance(animal["weightKg"], float) and animal["weightKg"] > 0
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", animal["born"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", animal["updatedAt"])
        assert set(animal["keeper"]) == {"name", "email"} and "@" in animal["keeper"]["email"]
        assert animal["tags"] and all(isinstance(tag, str) for tag in animal["tags"])


def test_generated_animals_look_varied() -> None:
    animals = generate_animals(count=300)

    assert len({animal["name"] for animal in animals}) >= 24
    assert len({animal["species"] for animal in animals}) >= 24
    assert len({animal["keeper"]["email"] for animal in animals}) >= 10


def test_about_a_third_of_the_generated_animals_give_their_legs_as_text() -> None:
    animals = generate_animals(count=300)
    as_text = [animal["legs"] for animal in animals if isinstance(animal["legs"], str)]
    as_numbers = [animal["legs"] for animal in animals if not isinstance(animal["legs"], str)]

    assert 70 <= len(as_text) <= 130
    assert all(legs.isdigit() for legs in as_text)
    assert all(type(legs) is int for legs in as_numbers)


def test_most_generated_animals_are_active() -> None:
    animals = generate_animals(count=300)
    active = sum(animal["status"] == "active" for animal in animals)

    assert 0.75 * 300 <= active <= 0.95 * 300


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        generate_animals(count=-1)


# -- DRF style pages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "page_size", "expected_pages"),
    [(100, 50, 2), (101, 50, 3), (49, 50, 1), (50, 50, 1), (0, 50, 1), (7, 1, 7)],
)
def test_following_next_links_returns_every_record_exactly_once(
    make_source: Callable[..., SampleSource], count: int, page_size: int, expected_pages: int
) -> None:
    source = make_source(count=count, page_size=page_size)

    records, pages = walk_next_links(f"{source.url}/animals")

    assert records == generate_animals(count=count)
    assert pages == expected_pages
    assert len(source.requests) == expected_pages


def test_a_page_reports_the_total_count_and_json_content_type(source: SampleSource) -> None:
    response = get(f"{source.url}/animals")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["count"] == 120
    assert [record["id"] for record in body["results"]] == list(range(1, 51))
    assert body["previous"] is None


def test_next_and_previous_links_keep_per_page_and_other_parameters(source: SampleSource) -> None:
    body = get(f"{source.url}/animals", page=2, per_page=20, ordering="id").json()

    assert [record["id"] for record in body["results"]] == list(range(21, 41))
    assert body["next"] == f"{source.url}/animals?ordering=id&page=3&per_page=20"
    assert body["previous"] == f"{source.url}/animals?ordering=id&per_page=20"


def test_walking_with_per_page_sends_it_on_every_page(source: SampleSource) -> None:
    records, pages = walk_next_links(f"{source.url}/animals?per_page=30")

    assert len(records) == 120
    assert pages == 4
    assert all("per_page=30" in path for path in source.requests)


def test_a_page_past_the_end_is_empty_and_has_no_next_link(source: SampleSource) -> None:
    body = get(f"{source.url}/animals", page=4).json()

    assert body["results"] == []
    assert body["next"] is None
    assert body["count"] == 120


def test_a_per_page_above_the_maximum_is_lowered_to_it(make_source: Callable[..., SampleSource]) -> None:
    source = make_source(count=MAX_PAGE_SIZE + 10)

    body = get(f"{source.url}/animals", per_page=MAX_PAGE_SIZE * 2).json()

    assert len(body["results"]) == MAX_PAGE_SIZE
    assert body["next"] is not None


def test_a_trailing_slash_is_accepted(source: SampleSource) -> None:
    assert get(f"{source.url}/animals/").json()["count"] == 120


# -- nested style pages --------------------------------------------------------------------------------------


def test_the_nested_endpoint_reports_page_pages_and_total(make_source: Callable[..., SampleSource]) -> None:
    source = make_source(count=101, page_size=50)

    body = get(f"{source.url}/api/zoo/animals", page=3).json()

    assert body["meta"] == {"page": 3, "pages": 3, "total": 101}
    assert [record["id"] for record in body["data"]["items"]] == [101]
    assert set(body) == {"data", "meta"}


def test_the_nested_endpoint_starts_on_page_one(source: SampleSource) -> None:
    body = get(f"{source.url}/api/zoo/animals").json()

    assert body["meta"]["page"] == 1
    assert [record["id"] for record in body["data"]["items"]] == list(range(1, 51))


def test_walking_nested_pages_by_number_returns_every_record(source: SampleSource) -> None:
    records: list[dict] = []
    page = 1
    while True:
        items = get(f"{source.url}/api/zoo/animals", page=page).json()["data"]["items"]
        if not items:
            break
        records.extend(items)
        page += 1

    assert records == source.records
    assert page == 4


def test_the_nested_endpoint_returns_no_items_past_the_last_page(source: SampleSource) -> None:
    body = get(f"{source.url}/api/zoo/animals", page=9).json()

    assert body["data"]["items"] == []
    assert body["meta"] == {"page": 9, "pages": 3, "total": 120}


# -- other endpoints and errors ------------------------------------------------------------------------------


def test_the_json_file_returns_every_record_without_pages(source: SampleSource) -> None:
    response = get(f"{source.url}/animals.json")

    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == generate_animals(count=120)


def test_an_animal_is_served_by_its_id(source: SampleSource) -> None:
    response = get(f"{source.url}/animals/42")

    assert response.status_code == 200
    assert response.json() == generate_animals(count=120)[41]


@pytest.mark.parametrize("path", ["/animals/121", "/animals/abc", "/animals/1/extra", "/", "/zebras"])
def test_an_unknown_animal_or_path_is_a_json_404(source: SampleSource, path: str) -> None:
    response = get(f"{source.url}{path}")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize(
    "path",
    [
        "/animals?page=abc",
        "/animals?page=0",
        "/animals?page=-1",
        "/animals?page=",
        "/animals?per_page=abc",
        "/animals?per_page=0",
        "/api/zoo/animals?page=abc",
    ],
)
def test_a_bad_page_or_per_page_is_a_json_400(source: SampleSource, path: str) -> None:
    response = get(f"{source.url}{path}")

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail"}


def test_writing_methods_are_refused_with_405(source: SampleSource) -> None:
    response = requests.post(f"{source.url}/animals", json={"name": "Nala"}, timeout=TIMEOUT)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert len(source.records) == 120


def test_concurrent_requests_are_all_answered(source: SampleSource) -> None:
    urls = [f"{source.url}/animals/{number}" for number in range(1, 41)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        names = list(pool.map(lambda url: get(url).json()["name"], urls))

    assert names == [animal["name"] for animal in generate_animals(count=40)]
    assert len(source.requests) == 40


# -- mutations -----------------------------------------------------------------------------------------------


def test_an_updated_record_is_served_on_the_next_request(source: SampleSource) -> None:
    returned = source.update_record(7, name="Renamed", status="retired")

    served = get(f"{source.url}/animals/7").json()
    assert served["name"] == "Renamed" and served["status"] == "retired"
    assert served == returned
    assert get(f"{source.url}/animals").json()["results"][6]["name"] == "Renamed"


def test_a_removed_record_is_no_longer_served(source: SampleSource) -> None:
    removed = source.remove_record(3)

    assert removed["id"] == 3
    assert get(f"{source.url}/animals/3").status_code == 404
    body = get(f"{source.url}/animals").json()
    assert body["count"] == 119
    assert 3 not in [record["id"] for record in body["results"]]


def test_an_added_record_is_served(source: SampleSource) -> None:
    source.add_record({"id": 500, "name": "Newcomer", "species": "Axolotl"})

    assert get(f"{source.url}/animals/500").json()["name"] == "Newcomer"
    assert get(f"{source.url}/animals.json").json()[-1]["id"] == 500


def test_adding_a_record_with_an_id_already_served_is_refused(source: SampleSource) -> None:
    with pytest.raises(ValueError, match="already exists"):
        source.add_record({"id": 1, "name": "Twin"})


def test_replaced_records_are_served(source: SampleSource) -> None:
    source.replace_records([{"id": "a-1", "name": "Solo"}])

    body = get(f"{source.url}/animals").json()
    assert body["count"] == 1 and body["results"] == [{"id": "a-1", "name": "Solo"}]
    assert get(f"{source.url}/animals/a-1").json()["name"] == "Solo"


def test_changing_an_unknown_record_raises_key_error(source: SampleSource) -> None:
    with pytest.raises(KeyError):
        source.update_record(999, name="Ghost")
    with pytest.raises(KeyError):
        source.remove_record(999)


def test_the_records_given_and_returned_are_copies(make_source: Callable[..., SampleSource]) -> None:
    given = [{"id": 1, "name": "Original", "keeper": {"name": "Ann"}}]
    source = make_source(records=given)

    source.update_record(1, name="Changed")
    source.records[0]["keeper"]["name"] = "Someone else"

    assert given == [{"id": 1, "name": "Original", "keeper": {"name": "Ann"}}]
    assert get(f"{source.url}/animals/1").json() == {"id": 1, "name": "Changed", "keeper": {"name": "Ann"}}


# -- request log and life cycle ------------------------------------------------------------------------------


def test_the_request_log_lists_each_path_with_its_query_and_can_be_reset(source: SampleSource) -> None:
    get(f"{source.url}/animals", page=2, per_page=10)
    get(f"{source.url}/animals/5")
    get(f"{source.url}/nowhere")

    assert source.requests == ["/animals?page=2&per_page=10", "/animals/5", "/nowhere"]

    source.reset_requests()
    get(f"{source.url}/animals.json")
    assert source.requests == ["/animals.json"]


def test_the_source_works_as_a_context_manager_and_stops_twice_harmlessly() -> None:
    with SampleSource(records=generate_animals(count=3)) as source:
        url = source.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert get(f"{url}/animals").json()["count"] == 3

    source.stop()
    with pytest.raises(requests.ConnectionError):
        get(f"{url}/animals")
    with pytest.raises(RuntimeError):
        _ = source.url


def test_a_page_size_above_the_maximum_is_refused() -> None:
    with pytest.raises(ValueError, match="page_size"):
        SampleSource(page_size=MAX_PAGE_SIZE + 1)


# -- running it alone ----------------------------------------------------------------------------------------


def _run_until_ctrl_c(command: list[str]) -> tuple[str, str]:
    """Start `command`, read its banner, fetch a page, press Ctrl-C; return the banner and the rest."""
    process = subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell running the tests in the background may ignore Ctrl-C; the server must not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        banner = ""
        while "/animals.json" not in banner:
            line = process.stdout.readline()
            assert line, f"the banner ended early: {banner!r}; stderr: {process.stderr.read()!r}"
            banner += line
        found = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert found, f"no URL in {banner!r}"
        assert get(f"{found.group(0)}/animals", per_page=5).json()["count"] == 12
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors
    return banner, rest


@pytest.mark.timeout(60)
def test_the_module_prints_its_url_serves_and_stops_on_ctrl_c() -> None:
    banner, rest = _run_until_ctrl_c(
        [sys.executable, "-m", "syncapp.sample_source", "--port", "0", "--count", "12", "--page-size", "5"]
    )

    assert re.match(r"Sample source serving 12 animals at http://127\.0\.0\.1:\d+ ", banner)
    assert "/animals?page=1&per_page=5\n" in banner
    assert rest == "Stopped.\n"


@pytest.mark.timeout(60)
def test_the_management_command_prints_its_url_serves_and_stops_on_ctrl_c() -> None:
    banner, rest = _run_until_ctrl_c(
        [sys.executable, "manage.py", "sample_source", "--port", "0", "--count", "12", "--page-size", "7"]
    )

    assert re.match(r"Sample source serving 12 animals at http://127\.0\.0\.1:\d+ ", banner)
    assert "/animals?page=1&per_page=7\n" in banner
    assert rest == "Stopped.\n"


def test_the_management_command_refuses_a_page_size_above_the_maximum() -> None:
    with pytest.raises(CommandError, match="page-size"):
        call_command("sample_source", "--page-size", str(MAX_PAGE_SIZE + 1))


def test_the_module_refuses_a_negative_count() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--count", "-1"])

    assert exit_info.value.code == 2
