"""What watches the service: /metrics for Prometheus, /health/live and /health/ready for probes."""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from syncapp import health, metrics


def client_allowed(request: HttpRequest) -> bool:
    """Return whether the request comes from a network of SYNC_METRICS_ALLOWED_NETWORKS."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.SYNC_METRICS_ALLOWED_NETWORKS)


class MetricsReader(BasePermission):
    """Staff (an API token, a session, basic authentication), or a client of an allowed network."""

    def has_permission(self, request, view) -> bool:
        return client_allowed(request) or bool(request.user and request.user.is_staff)


class _JsonRefusals(BaseContentNegotiation):
    """Refusals in JSON whatever a scraper accepts; the exposition itself is a plain response."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type

    def select_parser(self, request, parsers):
        return None


class MetricsView(APIView):
    """The metrics of every process of this machine (PROMETHEUS_MULTIPROC_DIR), the queue and active runs."""

    permission_classes = [MetricsReader]
    content_negotiation_class = _JsonRefusals
    schema = None  # not part of the API's description

    def get(self, request, *args, **kwargs) -> HttpResponse:
        body = metrics.registry_collect(extra=[health.ScrapeCollector()])
        return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    """Answer that the process serves requests; nothing else is asked."""
    return JsonResponse({"status": "alive"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database, the broker and the budget store answer; 503 naming those that did not."""
    is_ready, answer = health.readiness()
    return JsonResponse(answer, status=200 if is_ready else 503)
