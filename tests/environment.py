"""Variables the tests need before Django reads its settings (loaded with `-p`, ahead of pytest-django).

A service on PostgreSQL refuses to start without DJANGO_SECRET_KEY (config/settings.py): the tests,
and the workers and commands they start (which inherit this environment), get one made for this
process, unless one is set.
"""
from __future__ import annotations

import os
import secrets

os.environ.setdefault("DJANGO_SECRET_KEY", f"tests-{secrets.token_urlsafe(32)}")
