"""The compose stack (docker-compose.yml), read as Docker Compose reads it: every long-running service has a
health check, each waits for the health of what it needs, the web's check asks /health/ready, and Flower
is an optional profile. (No Docker daemon runs where the tests do: the file is checked, not started.)"""
from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def long_running(service: dict) -> bool:
    """Return whether a service keeps running (a one-shot job says `restart: "no"` and exits)."""
    return service.get("restart", "no") != "no"


def test_every_long_running_service_has_a_health_check_and_waits_for_the_health_of_what_it_needs(services):
    running = {name for name, service in services.items() if long_running(service)}
    assert {"postgres", "redis", "web", "worker", "beat", "flower"} <= running

    unchecked = {name for name in running if not services[name].get("healthcheck", {}).get("test")}
    disabled = {name for name in running if services[name].get("healthcheck", {}).get("disable")}
    assert (unchecked, disabled) == (set(), set())
    for name in running:
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(check), name
    # And each waits for the health of what it needs, which is told: only a service with a check is waited on
    for name, service in services.items():
        for needed, condition in (service.get("depends_on") or {}).items():
            assert needed in services, f"{name} depends on {needed}, which is not in the file"
            if condition["condition"] == "service_healthy":
                assert services[needed].get("healthcheck"), f"{name} waits for {needed}'s health, which is never told"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_web_health_check_asks_whether_it_is_ready(services):
    check = " ".join(services["web"]["healthcheck"]["test"])

    assert "http://127.0.0.1:8000/health/ready" in check


def test_flower_is_an_optional_profile_on_loopback_with_basic_auth(services):
    flower = services["flower"]

    assert flower["profiles"] == ["flower"]
    assert "flower" in " ".join(flower["command"])
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert "FLOWER_BASIC_AUTH" in flower["environment"]
    # The default stack (no profile asked for) is what it was: no service in it needs Flower.
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"postgres", "redis", "web", "worker", "beat"}
    assert not any("flower" in (services[name].get("depends_on") or {}) for name in default)
