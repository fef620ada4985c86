"""Answers of the API to errors the views do not catch themselves, and its bounded paging."""
from __future__ import annotations

from typing import Any

from django.db.models import ProtectedError, RestrictedError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler

# How many of the records in the way a refusal names.
NAMED_AT_MOST = 5


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer DRF's errors as DRF does; a deletion other records prevent with 409 naming them."""
    if isinstance(exc, (ProtectedError, RestrictedError)):
        users = list(exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects)
        named = ", ".join(f"{type(user)._meta.verbose_name} {getattr(user, 'reference', user.pk)}"
                          for user in users[:NAMED_AT_MOST])
        more = f" and {len(users) - NAMED_AT_MOST} more" if len(users) > NAMED_AT_MOST else ""
        return Response(
            {"detail": f"cannot be deleted: used by {named}{more}; change or delete those first"},
            status=status.HTTP_409_CONFLICT,
        )
    return exception_handler(exc, context)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer a path nothing serves: under /api/ in JSON, as the API's own 404s; elsewhere Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """`limit` and `offset` paging, bounded: a page of at most 1000, an offset the database can take."""

    max_limit = 1000
    # PostgreSQL's OFFSET is a bigint; no list comes near this many records.
    max_offset = 10**15

    def get_offset(self, request: Any) -> int:
        return min(super().get_offset(request), self.max_offset)
