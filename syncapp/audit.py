"""Every configuration change recorded: who, when, what changed, as the admin's own history records it.

The admin records its changes itself; the API and imports record theirs here, in the same place
(Django's LogEntry, shown in each object's History). What changed is named by field, never by value,
so a change of credentials is recorded without them.
"""
from __future__ import annotations

import getpass
from collections.abc import Iterable
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.db import models

COMMAND_LINE_USER = "command-line"


def command_line_user() -> Any:
    """Return the user that changes made on the command line are recorded for (it cannot log in)."""
    users = get_user_model()
    user, created = users.objects.get_or_create(
        username=COMMAND_LINE_USER, defaults={"is_active": False, "first_name": "Command line"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def fields_changed(instance: models.Model, values: dict[str, Any]) -> list[str]:
    """Return the names of the fields whose new value differs from the instance's."""
    changed = []
    for name, value in values.items():
        current = getattr(instance, name, None)
        if isinstance(current, models.Model):
            current = current.pk
        if isinstance(value, models.Model):
            value = value.pk
        if current != value:
            changed.append(name)
    return changed


def change_record(*, user: Any, instance: models.Model, action: str, fields: Iterable[str] = (), via: str) -> None:
    """Record a change of one configured object: `action` is added, changed or deleted."""
    flag = {"added": ADDITION, "changed": CHANGE, "deleted": DELETION}[action]
    if user is None or not getattr(user, "pk", None):
        user = command_line_user()
    fields = list(fields)
    detail = f" {', '.join(fields)}" if action == "changed" and fields else ""
    origin = f"{via} by {getpass.getuser()}" if user.username == COMMAND_LINE_USER else via
    LogEntry.objects.log_actions(
        user.pk, [instance], flag, change_message=f"{action.capitalize()}{detail} ({origin})", single_object=True,
    )


def note_record(*, user: Any, instance: models.Model, message: str) -> None:
    """Record in an object's history what happened to something it holds (a run of a synchronization
    deleted: the run's own history goes with it)."""
    LogEntry.objects.log_actions(user.pk, [instance], CHANGE, change_message=message, single_object=True)


class AuditedViewSetMixin:
    """Record the API's creations, changes and deletions of configuration."""

    def perform_create(self, serializer) -> None:
        super().perform_create(serializer)
        change_record(user=self.request.user, instance=serializer.instance, action="added", via="API")

    def perform_update(self, serializer) -> None:
        fields = fields_changed(serializer.instance, serializer.validated_data)
        super().perform_update(serializer)
        change_record(user=self.request.user, instance=serializer.instance, action="changed", fields=fields,
                      via="API")

    def perform_destroy(self, instance) -> None:
        change_record(user=self.request.user, instance=instance, action="deleted", via="API")
        super().perform_destroy(instance)
