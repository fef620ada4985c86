"""Who may do what: staff users with the Django permission of each model and action.

Reading needs the model's `view` permission, writing its `add`, `change` or `delete` permission;
starting or testing a run needs `syncapp.run_synchronization`, cancelling one `contracts.cancel_run`.
The API and the admin check the same permissions.
"""
from __future__ import annotations

from typing import Any

from rest_framework import permissions

RUN = "syncapp.run_synchronization"
# Setting, clearing or confirming a source's credentials: `change_source` alone may move a source's location,
# but its credentials are then not sent until a user with this permission confirms them for the new origin.
CHANGE_CREDENTIALS = "syncapp.change_source_credentials"
CANCEL = "contracts.cancel_run"


class ModelActionPermission(permissions.DjangoModelPermissions):
    """Staff with the model's permission for the request: view to read, add, change or delete to write.

    A view's extra actions name theirs in `action_permissions` ({"run": [RUN]}).
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        needed = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if needed is not None:
            return user.has_perms(needed)
        if getattr(view, "queryset", None) is None and not hasattr(view, "get_queryset"):
            return True  # the API's index: it lists links, no data
        return super().has_permission(request, view)
