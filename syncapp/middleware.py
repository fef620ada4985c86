"""What every request of the admin and the API passes through."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from contracts.runs import runs_fail_stale

# The admin and the API show runs; static files, the login page's assets and the API docs' own files do not.
RUN_READERS = ("/admin/", "/api/")


class LostRunsMiddleware:
    """Fail the runs nobody runs any more before the admin or the API shows any (one query when none is lost):
    a run whose process is gone is shown failed with the reason at the next look, never running."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(RUN_READERS):
            runs_fail_stale()
        return self.get_response(request)
