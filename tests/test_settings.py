"""Settings from the environment: the config.env helpers, and what settings make of real environments."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import (
    SettingError,
    describe_url,
    env_bool,
    env_dirs,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
)
from config.keys import BUILTIN_SECRET_KEY, CREDENTIAL_KEY_FILE, SECRET_KEY_FILE

ROOT = Path(__file__).resolve().parent.parent
NAME = "SYNC_TEST_SETTING"


@pytest.fixture
def setenv(monkeypatch):
    """Set the test variable for one test; it is removed afterwards."""
    def set_value(value: str) -> None:
        monkeypatch.setenv(NAME, value)

    monkeypatch.delenv(NAME, raising=False)
    return set_value


# ---------------------------------------------------------------------------------------------
# Defaults: unset and empty are the same


@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_every_helper_returns_its_default_when_the_variable_is_unset_or_empty(setenv, value):
    if value is not None:
        setenv(value)

    assert env_str(NAME) is None
    assert env_str(NAME, default="fallback") == "fallback"
    assert env_int(NAME, default=7) == 7
    assert env_float(NAME, default=1.5) == 1.5
    assert env_bool(NAME, default=True) is True
    assert env_bool(NAME, default=False) is False
    assert env_list(NAME, default=["a", "b"]) == ["a", "b"]
    assert env_url(NAME, schemes=("redis",)) is None
    assert env_url(NAME, schemes=("redis",), default="redis://fallback:6379/0") == "redis://fallback:6379/0"


def test_a_default_list_is_copied_so_changing_the_result_does_not_change_the_default():
    default = ["localhost"]

    env_list(NAME, default=default).append("example.com")

    assert default == ["localhost"]


# ---------------------------------------------------------------------------------------------
# Parsing


def test_text_is_returned_without_surrounding_whitespace(setenv):
    setenv("  hello world \n")

    assert env_str(NAME, default="fallback") == "hello world"


@pytest.mark.parametrize(("value", "expected"), [("42", 42), (" 7 ", 7), ("-3", -3), ("0", 0)])
def test_whole_numbers_are_parsed(setenv, value, expected):
    setenv(value)

    assert env_int(NAME, default=1) == expected


@pytest.mark.parametrize(("value", "expected"), [("2.5", 2.5), ("3", 3.0), (" 1e3 ", 1000.0)])
def test_numbers_are_parsed(setenv, value, expected):
    setenv(value)

    assert env_float(NAME, default=1.0) == expected


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes", "on", " on "])
def test_true_spellings_are_true(setenv, value):
    setenv(value)

    assert env_bool(NAME, default=False) is True


@pytest.mark.parametrize("value", ["0", "false", "False", "NO", "off"])
def test_false_spellings_are_false(setenv, value):
    setenv(value)

    assert env_bool(NAME, default=True) is False


def test_a_list_is_split_on_commas_dropping_blanks_and_whitespace(setenv):
    setenv(" example.com, api.example.com,, ,localhost ")

    assert env_list(NAME, default=[]) == ["example.com", "api.example.com", "localhost"]


@pytest.mark.parametrize(
    "url",
    ["postgresql://sync:sync@postgres:5432/sync", "postgres://db/sync", "sqlite:////tmp/sync.sqlite3"],
)
def test_a_url_with_an_allowed_scheme_is_returned_as_given(setenv, url):
    setenv(url)

    assert env_url(NAME, schemes=("postgres", "postgresql", "sqlite")) == url


def test_describe_url_leaves_a_url_without_a_password_alone():
    assert describe_url("redis://cache:6379/0") == "redis://cache:6379/0"


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("postgresql://sync:hunter2@db:5432/sync", "postgresql://sync:***@db:5432/sync"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
    ],
)
def test_describe_url_masks_the_password(url, described):
    assert describe_url(url) == described


# ---------------------------------------------------------------------------------------------
# Bad values fail loudly, naming the variable


def test_a_whole_number_that_is_not_one_fails_naming_the_variable_and_the_value(setenv):
    setenv("abc")

    with pytest.raises(SettingError) as error:
        env_int(NAME, default=1)

    assert NAME in str(error.value)
    assert "'abc'" in str(error.value)


def test_a_decimal_is_not_a_whole_number(setenv):
    setenv("2.5")

    with pytest.raises(SettingError, match=NAME):
        env_int(NAME, default=1)


def test_a_whole_number_below_its_minimum_fails_naming_the_variable(setenv):
    setenv("5")

    with pytest.raises(SettingError) as error:
        env_int(NAME, default=60, minimum=10)

    assert NAME in str(error.value)
    assert "10" in str(error.value)


def test_a_number_that_is_not_one_fails_naming_the_variable(setenv):
    setenv("fast")

    with pytest.raises(SettingError, match=NAME):
        env_float(NAME, default=1.0)


@pytest.mark.parametrize("value", ["maybe", "2", "y", "enabled"])
def test_a_boolean_that_is_not_one_fails_naming_the_variable_and_the_value(setenv, value):
    setenv(value)

    with pytest.raises(SettingError) as error:
        env_bool(NAME, default=False)

    assert NAME in str(error.value)
    assert repr(value) in str(error.value)


def test_a_url_with_a_wrong_scheme_fails_naming_the_variable_and_the_allowed_schemes(setenv):
    setenv("mysql://x/y")

    with pytest.raises(SettingError) as error:
        env_url(NAME, schemes=("postgres", "postgresql"))

    message = str(error.value)
    assert NAME in message
    assert "postgresql://" in message
    assert "mysql://x/y" in message


def test_a_url_with_a_wrong_scheme_is_reported_with_its_password_masked(setenv):
    setenv("amqp://guest:hunter2@rabbit:5672//")

    with pytest.raises(SettingError) as error:
        env_url(NAME, schemes=("redis", "rediss"))

    message = str(error.value)
    assert NAME in message
    assert "hunter2" not in message
    assert "amqp://guest:***@rabbit:5672//" in message


def test_a_url_without_a_host_fails_naming_the_variable_with_its_password_masked(setenv):
    setenv("postgresql://sync:hunter2@/sync")

    with pytest.raises(SettingError) as error:
        env_url(NAME, schemes=("postgresql",))

    assert NAME in str(error.value)
    assert "hunter2" not in str(error.value)


def test_text_without_a_scheme_is_not_a_url(setenv):
    setenv("postgres-server")

    with pytest.raises(SettingError, match=NAME):
        env_url(NAME, schemes=("postgresql",))


# ---------------------------------------------------------------------------------------------
# Loading the settings in a fresh process

SETUP = (
    "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup(); "
    "from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']), "
    "'tasks_in_process': s.TASKS_IN_PROCESS, 'broker': s.CELERY_BROKER_URL}))"
)


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Import the settings in a new interpreter with only these variables (and PATH) set."""
    environment = {"PATH": os.environ.get("PATH", ""), "SYNC_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-c", SETUP], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def last_line(text: str) -> str:
    """Return the last line of a traceback: the exception and its message."""
    return text.strip().splitlines()[-1] if text.strip() else ""


def test_with_no_database_and_no_broker_the_settings_use_sqlite_and_tasks_in_process(tmp_path):
    result = load_settings(tmp_path)

    assert result.returncode == 0, result.stderr
    loaded = json.loads(last_line(result.stdout))
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(tmp_path / "data" / "sync.sqlite3")
    assert (tmp_path / "data").is_dir()  # the data directory is created
    assert loaded["tasks_in_process"] is True


def test_with_a_database_and_a_broker_the_settings_use_them_and_tasks_go_to_the_broker(tmp_path):
    result = load_settings(
        tmp_path, DATABASE_URL="postgresql://sync:sync@postgres:5432/sync", CELERY_BROKER_URL="redis://redis:6379/0",
        DJANGO_SECRET_KEY="a-long-random-secret-of-this-installation",
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(last_line(result.stdout))
    assert (loaded["engine"], loaded["name"]) == ("django.db.backends.postgresql", "sync")
    assert loaded["tasks_in_process"] is False
    assert loaded["broker"] == "redis://redis:6379/0"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://x/y"),
        ("DATABASE_URL", "mysql://sync:hunter2@db/sync"),
        ("CELERY_BROKER_URL", "amqp://guest:hunter2@rabbit:5672//"),
        ("DJANGO_DEBUG", "maybe"),
        ("CELERY_VISIBILITY_TIMEOUT", "abc"),
        ("LOG_LEVEL", "loud"),
        ("LOG_FORMAT", "xml"),
        ("SYNC_S3_ENDPOINT_URL", "http://minio:9000"),
        ("SYNC_S3_ADDRESSING_STYLE", "sideways"),
        ("SYNC_RULE_FILES_STORAGE", "elsewhere"),
        ("SYNC_FILE_ALLOWED_DIRS", "/srv/drop,relative/dir"),
        ("SYNC_FILE_MAX_BYTES", "lots"),
        ("SYNC_FILE_DOWNLOAD_TIMEOUT", "100000"),
    ],
)
def test_a_bad_value_stops_the_settings_with_a_message_naming_the_variable(tmp_path, variable, value):
    result = load_settings(tmp_path, **{variable: value})

    assert result.returncode != 0
    message = last_line(result.stderr)
    assert message.startswith("config.env.SettingError: "), result.stderr
    assert variable in message
    assert "hunter2" not in result.stderr


def test_the_media_root_of_uploads_lies_in_the_data_directory_unless_set(tmp_path):
    show = SETUP.replace("'broker': s.CELERY_BROKER_URL}", "'broker': s.CELERY_BROKER_URL, 'media': str(s.MEDIA_ROOT)}")
    environment = {"PATH": os.environ.get("PATH", ""), "SYNC_DATA_DIR": str(tmp_path / "data")}
    default = subprocess.run([sys.executable, "-c", show], cwd=ROOT, env=environment, capture_output=True, text=True,
                             timeout=60)
    chosen = subprocess.run([sys.executable, "-c", show], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**environment, "SYNC_MEDIA_ROOT": str(tmp_path / "shared")})

    assert json.loads(last_line(default.stdout))["media"] == str(tmp_path / "data" / "media"), default.stderr
    assert json.loads(last_line(chosen.stdout))["media"] == str(tmp_path / "shared"), chosen.stderr


def test_a_required_secret_key_that_is_missing_stops_the_settings(tmp_path):
    result = load_settings(tmp_path, DJANGO_REQUIRE_SECRET_KEY="true")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in last_line(result.stderr)


KEYS = SETUP.replace("'broker': s.CELERY_BROKER_URL}", "'secret': s.SECRET_KEY, 'credential': s.SYNC_CREDENTIAL_KEYS}")


def load_keys(tmp_path: Path, **env: str) -> dict:
    """Return the secret key and the credential keys the settings hold with these variables."""
    environment = {"PATH": os.environ.get("PATH", ""), "SYNC_DATA_DIR": str(tmp_path / "data"), **env}
    result = subprocess.run([sys.executable, "-c", KEYS], cwd=ROOT, env=environment, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(last_line(result.stdout))


@pytest.mark.parametrize("debug", ["false", None], ids=["DEBUG off", "DEBUG unset"])
def test_a_service_on_postgresql_without_a_secret_key_refuses_to_start(tmp_path, debug):
    result = load_settings(tmp_path, DATABASE_URL="postgresql://sync:sync@postgres:5432/sync",
                           **({"DJANGO_DEBUG": debug} if debug else {}))

    assert result.returncode != 0
    assert last_line(result.stderr).startswith("config.env.SettingError: DJANGO_SECRET_KEY must be set")


@pytest.mark.parametrize("database", [None, "postgresql://sync:sync@postgres:5432/sync"],
                         ids=["embedded", "postgresql"])
def test_the_public_built_in_secret_key_is_refused_outside_debug(tmp_path, database):
    result = load_settings(tmp_path, DJANGO_SECRET_KEY=BUILTIN_SECRET_KEY,
                           **({"DATABASE_URL": database} if database else {}))

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is the key built into the source, which is public" in last_line(result.stderr)
    assert load_settings(tmp_path, DJANGO_SECRET_KEY=BUILTIN_SECRET_KEY, DJANGO_DEBUG="true").returncode == 0


def test_the_embedded_service_makes_its_own_keys_on_first_start_readable_by_its_owner_only_and_keeps_them(tmp_path):
    # Given no DJANGO_SECRET_KEY, no SYNC_CREDENTIAL_KEYS and no database: the embedded default
    # When it starts for the first time
    first = load_keys(tmp_path)

    # Then it made a secret key and a credential key of its own, in files only their owner may read
    data = tmp_path / "data"
    assert first["secret"] == (data / SECRET_KEY_FILE).read_text().strip()
    assert first["secret"] != BUILTIN_SECRET_KEY and len(first["secret"]) >= 50
    assert first["credential"] == [(data / CREDENTIAL_KEY_FILE).read_text().strip()]
    for name in (SECRET_KEY_FILE, CREDENTIAL_KEY_FILE):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    # And every start after uses the same ones; another data directory gets others
    assert load_keys(tmp_path) == first
    assert load_keys(tmp_path / "elsewhere")["secret"] != first["secret"]
    # And keys an operator sets win
    chosen = "chosen-secret-of-the-operator"
    assert load_keys(tmp_path, DJANGO_SECRET_KEY=chosen)["secret"] == chosen


def test_a_key_file_others_may_read_stops_the_settings(tmp_path):
    load_keys(tmp_path)
    (tmp_path / "data" / SECRET_KEY_FILE).chmod(0o644)

    result = load_settings(tmp_path)

    assert result.returncode != 0
    assert "may be read by other users (mode 644): make it readable by its owner only" in last_line(result.stderr)


def test_a_bad_value_of_the_service_server_database_source_setting_stops_the_settings(tmp_path):
    result = load_settings(tmp_path, SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER="sometimes")

    assert result.returncode != 0
    assert "SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER must be one of true/false" in last_line(result.stderr)


def test_a_task_time_limit_that_is_not_below_the_visibility_timeout_stops_the_settings(tmp_path):
    result = load_settings(tmp_path, CELERY_VISIBILITY_TIMEOUT="600", CELERY_TASK_TIME_LIMIT="600")

    assert result.returncode != 0
    assert "CELERY_TASK_TIME_LIMIT" in last_line(result.stderr)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "postgresql://sync:hunter2@db:notaport/sync"),
        ("DATABASE_URL", "postgresql://sync:hunter2@[db/sync"),
        ("CELERY_BROKER_URL", "redis://:hunter2@redis:notaport/0"),
    ],
    ids=["database port", "database bracket", "broker port"],
)
def test_a_malformed_url_stops_the_settings_with_a_message_naming_the_variable(tmp_path, variable, value):
    result = load_settings(tmp_path, **{variable: value})

    assert result.returncode != 0
    message = last_line(result.stderr)
    assert message.startswith("config.env.SettingError: "), result.stderr
    assert variable in message
    assert "hunter2" not in result.stderr


def test_directories_are_absolute_and_resolved(setenv, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    setenv(f"{tmp_path}/link, /srv/data/../sqlite")

    assert env_dirs(NAME, default=[]) == (os.path.realpath(tmp_path / "real"), "/srv/sqlite")


def test_a_relative_directory_fails_naming_the_variable(setenv):
    setenv("/srv/sqlite,data/sqlite")

    with pytest.raises(SettingError, match=f"{NAME}: 'data/sqlite' is not an absolute path"):
        env_dirs(NAME, default=[])


def test_a_relative_sqlite_directory_for_database_sources_stops_the_settings(tmp_path):
    result = load_settings(tmp_path, SYNC_DATABASE_SOURCE_SQLITE_DIRS="var/sqlite")

    assert result.returncode != 0
    assert "SYNC_DATABASE_SOURCE_SQLITE_DIRS: 'var/sqlite' is not an absolute path" in last_line(result.stderr)


@pytest.mark.parametrize(("env", "message"), [
    ({"SYNC_PAGE_MAX_BYTES": "64MB"}, "SYNC_PAGE_MAX_BYTES must be a whole number, got '64MB'"),
    ({"SYNC_VALUE_MAX_BYTES": "10"}, "SYNC_VALUE_MAX_BYTES must be at least 1024, got 10"),
    ({"SYNC_PAGE_MAX_BYTES": "1048576", "SYNC_VALUE_MAX_BYTES": "2097152"},
     "SYNC_VALUE_MAX_BYTES (2097152) must be at most SYNC_PAGE_MAX_BYTES (1048576)"),
    ({"SYNC_LOG_VALUE_MAX_BYTES": "-1"}, "SYNC_LOG_VALUE_MAX_BYTES must be at least 1024, got -1"),
])
def test_a_bad_byte_budget_stops_the_service_naming_the_variable(tmp_path, env, message):
    result = load_settings(tmp_path, **env)

    assert result.returncode != 0
    assert message in last_line(result.stderr), result.stderr


STORAGE = SETUP.replace("'broker': s.CELERY_BROKER_URL}", "'default': s.STORAGES['default']}")


def test_files_are_kept_in_the_media_root_unless_a_bucket_is_named_and_then_in_the_bucket(tmp_path):
    def default_storage(**env: str) -> dict:
        environment = {"PATH": os.environ.get("PATH", ""), "SYNC_DATA_DIR": str(tmp_path / "data"), **env}
        result = subprocess.run([sys.executable, "-c", STORAGE], cwd=ROOT, env=environment, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(last_line(result.stdout))["default"]

    assert default_storage() == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    bucket = default_storage(SYNC_S3_BUCKET="sync-files", SYNC_S3_ENDPOINT_URL="http://minio:9000",
                             SYNC_S3_ACCESS_KEY_ID="key-id", SYNC_S3_SECRET_ACCESS_KEY="key-secret",
                             SYNC_S3_PREFIX="/production/", SYNC_S3_REGION="eu-west-1")
    assert bucket["BACKEND"] == "storages.backends.s3.S3Storage"
    options = bucket["OPTIONS"]
    assert (options["bucket_name"], options["endpoint_url"], options["region_name"], options["location"]) == (
        "sync-files", "http://minio:9000", "eu-west-1", "production")
    assert (options["access_key"], options["secret_key"], options["addressing_style"]) == (
        "key-id", "key-secret", "path")
    assert options["file_overwrite"] is False and options["default_acl"] is None


def test_one_s3_key_without_the_other_stops_the_settings(tmp_path):
    result = load_settings(tmp_path, SYNC_S3_BUCKET="sync-files", SYNC_S3_ACCESS_KEY_ID="key-id")

    assert result.returncode != 0
    assert "SYNC_S3_SECRET_ACCESS_KEY" in last_line(result.stderr)
