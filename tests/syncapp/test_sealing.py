"""Credentials sealed at rest: encrypted in the database, rotated with several keys, never in clear text
in any column, export or command output."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from config.keys import BUILTIN_SECRET_KEY
from syncapp import runs as sync_runs
from syncapp.configuration import CREDENTIALS_KEPT, bundle_export, bundle_import
from syncapp.models import Object, Source
from syncapp.sealing import key_derived
from tests.conftest import ROOT
from tests.syncapp.test_authentication import CLIENT_SECRET, SECRETS, TOKEN, Api, oauth2, prepared
from tests.test_settings import last_line, load_settings

pytestmark = pytest.mark.usefixtures("transactional_db", "in_process_tasks")


def stored(column: str, reference: str) -> str:
    """Return a column of a source as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM syncapp_source WHERE reference = %s", [reference])
        return cursor.fetchone()[0]


def database_text() -> str:
    """Return every row of every table of the service as text, to search for secrets."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        rows = []
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" AS t')  # noqa: S608 - names from the catalogue
            rows += [row[0] for row in cursor.fetchall()]
    return "\n".join(rows)


@pytest.fixture
def keys(settings):
    """Set SYNC_CREDENTIAL_KEYS, newest first."""
    def use(*values: str) -> None:
        settings.SYNC_CREDENTIAL_KEYS = values

    return use


def test_credentials_are_stored_encrypted_and_read_back(keys):
    keys(Fernet.generate_key().decode())
    source = Source.objects.create(reference="s", name="s", location="http://127.0.0.1:1",
                                   credentials={"type": "bearer", "token": TOKEN})

    raw = stored("credentials", "s")

    assert TOKEN not in raw and "bearer" not in raw
    assert Source.objects.get(pk=source.pk).credentials == {"type": "bearer", "token": TOKEN}


def test_no_secret_is_in_any_database_column_after_runs_with_an_oauth2_token():
    # Given a source with OAuth2 client credentials whose token the runs cache for every worker
    api = Api(accepts=lambda seen, api: api.valid_token(seen))
    with api.server:
        sync = prepared(api.server.url, oauth2(api.server.url))
        run = sync_runs.run_start(synchronization=sync)
    run.refresh_from_db()
    assert run.status == "succeeded" and Object.objects.exists()
    assert api.tokens  # a token was handed out and cached

    # Then neither the client secret nor any token is anywhere in the database in clear text
    everything = database_text()
    for secret in [CLIENT_SECRET, *api.tokens]:
        assert secret not in everything
    assert Source.objects.get(pk=sync.source_id).auth_token_cache["token"] == api.tokens[-1]


def test_an_export_holds_a_placeholder_that_an_import_reads_as_keep_the_credentials():
    bundle_import({"sources": [{"reference": "s", "location": "http://127.0.0.1:1",
                                "credentials": {"type": "basic", "username": "u", "password": SECRETS[1]}}]})

    exported = bundle_export()
    text = json.dumps(exported)
    bundle_import(exported)

    assert SECRETS[1] not in text
    assert exported["sources"][0]["credentials"] == CREDENTIALS_KEPT
    assert Source.objects.get(reference="s").credentials == {"type": "basic", "username": "u", "password": SECRETS[1]}


def test_a_key_is_rotated_by_putting_a_new_one_first_and_rekeying(keys):
    # Given credentials sealed with an old key
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(old)
    Source.objects.create(reference="s", name="s", location="http://127.0.0.1:1",
                          credentials={"type": "bearer", "token": TOKEN})

    # When a new key is put first and the secrets are sealed again
    keys(new, old)
    assert Source.objects.get(reference="s").credentials["token"] == TOKEN  # both still decrypt
    out = io.StringIO()
    call_command("sync", "rekey", stdout=out)

    # Then the new key alone decrypts them, and the old one can go
    assert "1 source(s)" in out.getvalue()
    assert json.loads(Fernet(new).decrypt(stored("credentials", "s").encode())) == {"type": "bearer", "token": TOKEN}
    keys(new)
    assert Source.objects.get(reference="s").credentials["token"] == TOKEN


def test_credentials_no_key_decrypts_fail_the_run_clearly_and_rekey_refuses(keys):
    keys(Fernet.generate_key().decode())
    with Api(accepts=lambda seen, api: True).server as server:
        sync = prepared(server.url, {"type": "bearer", "token": TOKEN})
        keys(Fernet.generate_key().decode())  # the key that sealed them is gone

        run = sync_runs.run_start(synchronization=sync)

    run.refresh_from_db()
    assert run.status == "failed"
    assert "cannot be decrypted with SYNC_CREDENTIAL_KEYS" in run.error_message
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("sync", "rekey", stdout=io.StringIO())


def test_credentials_stored_in_clear_before_sealing_are_read_and_sealed_by_rekey(keys):
    keys(Fernet.generate_key().decode())
    Source.objects.create(reference="s", name="s", location="http://127.0.0.1:1")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE syncapp_source SET credentials = %s WHERE reference = 's'",
                       [json.dumps({"type": "bearer", "token": TOKEN})])

    assert Source.objects.get(reference="s").credentials["token"] == TOKEN
    call_command("sync", "rekey", stdout=io.StringIO())
    assert TOKEN not in stored("credentials", "s")


def test_without_keys_a_key_derived_from_the_secret_key_is_used_and_the_service_says_so(settings, tmp_path):
    settings.SYNC_CREDENTIAL_KEYS = ()
    Source.objects.create(reference="s", name="s", location="http://127.0.0.1:1",
                          credentials={"type": "bearer", "token": TOKEN})
    assert json.loads(Fernet(key_derived(settings.SECRET_KEY)).decrypt(stored("credentials", "s").encode()))

    # On PostgreSQL with a secret key set: the embedded service would make a credential key of its own.
    env = {key: value for key, value in os.environ.items() if key not in {"SYNC_CREDENTIAL_KEYS", "CELERY_BROKER_URL"}}
    env["SYNC_DATA_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert "SYNC_CREDENTIAL_KEYS is not set: credentials are encrypted with a key derived from" in result.stderr


def test_credentials_sealed_with_the_public_built_in_key_are_read_and_moved_off_it_by_rekey(keys):
    # Given credentials stored by a service that ran on the built-in secret key, without credential keys
    public = Fernet(key_derived(BUILTIN_SECRET_KEY))
    Source.objects.create(reference="s", name="s", location="http://127.0.0.1:1")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE syncapp_source SET credentials = %s WHERE reference = 's'",
                       [public.encrypt(json.dumps({"type": "bearer", "token": TOKEN}).encode()).decode()])
    # When the service has a key of its own
    own = Fernet.generate_key().decode()
    keys(own)

    # Then they are still read, and `sync rekey` encrypts them with its own key, off the public one
    assert Source.objects.get(reference="s").credentials["token"] == TOKEN
    call_command("sync", "rekey", stdout=io.StringIO())
    assert json.loads(Fernet(own).decrypt(stored("credentials", "s").encode()))["token"] == TOKEN
    with pytest.raises(InvalidToken):
        public.decrypt(stored("credentials", "s").encode())


def test_sync_keygen_prints_a_key_the_settings_take(tmp_path):
    out = io.StringIO()
    call_command("sync", "keygen", stdout=out)
    key = out.getvalue().strip()

    assert Fernet(key)
    assert load_settings(tmp_path, SYNC_CREDENTIAL_KEYS=f"{key},{Fernet.generate_key().decode()}").returncode == 0
    bad = load_settings(tmp_path, SYNC_CREDENTIAL_KEYS="not-a-key")
    assert "SYNC_CREDENTIAL_KEYS holds a value that is not a Fernet key" in last_line(bad.stderr)
    assert "not-a-key" not in bad.stderr  # a key, even a wrong one, is not shown back
