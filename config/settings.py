"""Settings of the service, all read from the environment through config.env.

Embedded default: with no DATABASE_URL and no CELERY_BROKER_URL the service keeps its data in a
SQLite file and runs tasks in-process, so it can be tried with nothing installed.
"""
import base64
import binascii
import contextlib
from pathlib import Path

import dj_database_url

from config.env import (
    SettingError,
    env_bool,
    env_choice,
    env_dirs,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
    env_url,
)
from config.keys import (
    BUILTIN_SECRET_KEY,
    CREDENTIAL_KEY_FILE,
    SECRET_KEY_FILE,
    credential_key_make,
    key_file_read_or_create,
    secret_key_make,
)
from config.storage import s3_storage

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
# Behind an HTTPS proxy the admin's forms need their origin listed, e.g. https://sync.example.org
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "syncapp",
    "contracts",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from the application, however it is run (runserver, gunicorn, the compose stack).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A run whose process is gone is failed (or queued again for the runner) before any page shows it.
    "syncapp.middleware.LostRunsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_url(
    "DATABASE_URL", schemes=("postgres", "postgresql", "pgsql", "sqlite"), default=None
)
# SQLite is shared by the web process, `sync` commands and in-process runs. WAL lets readers go on
# beside a writer; IMMEDIATE transactions take the write lock when they begin, so a transaction that
# read first never fails at once with "database is locked" on its first write (SQLite's deadlock
# guard skips the busy timeout there); the busy timeout is how long a writer waits for another.
# A lock held longer than that is a transient error: the task is retried (workers.dispatch).
SQLITE_BUSY_TIMEOUT = env_int("SYNC_SQLITE_BUSY_TIMEOUT", default=30, minimum=1)
SQLITE_OPTIONS = {
    "timeout": SQLITE_BUSY_TIMEOUT,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
}
# The service's own files: the embedded SQLite database, uploads (below).
DATA_DIR = Path(env_str("SYNC_DATA_DIR", default=str(BASE_DIR / "var")))
if DATABASE_URL is None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "sync.sqlite3"),
        }
    }
else:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
            "DATABASE_CONNECT_TIMEOUT", default=10, minimum=1
        )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
# The embedded service: a SQLite database, so one machine, whose processes share the data directory.
EMBEDDED = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"

# The secret key signs sessions and, without SYNC_CREDENTIAL_KEYS, derives the key of stored credentials:
# the built-in one is public. The embedded service makes its own in the data directory on first start;
# a service on PostgreSQL (several machines) must be given one, and refuses to start without it.
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if SECRET_KEY == BUILTIN_SECRET_KEY and not DEBUG:
    raise SettingError(
        "DJANGO_SECRET_KEY is the key built into the source, which is public: set a long random one "
        "(python3 -c \"import secrets; print(secrets.token_urlsafe(50))\")"
    )
if SECRET_KEY is None:
    if env_bool("DJANGO_REQUIRE_SECRET_KEY", default=False):
        raise SettingError("DJANGO_SECRET_KEY must be set when DJANGO_REQUIRE_SECRET_KEY is on")
    if EMBEDDED:
        SECRET_KEY = key_file_read_or_create(
            DATA_DIR / SECRET_KEY_FILE, make=secret_key_make, setting="DJANGO_SECRET_KEY"
        )
    elif DEBUG:
        SECRET_KEY = BUILTIN_SECRET_KEY  # DEBUG is for a developer's own machine only
    else:
        raise SettingError(
            "DJANGO_SECRET_KEY must be set with a DATABASE_URL of PostgreSQL (every web process and worker "
            "needs the same one): set a long random one "
            "(python3 -c \"import secrets; print(secrets.token_urlsafe(50))\")"
        )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One way to show a stored date and time in the admin, as its own pages write them (config/formats).
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
# Where `collectstatic` puts them and WhiteNoise looks first; a read-only installation serves them from
# the apps' own folders instead (below).
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Served from the apps' own static folders when `collectstatic` has not been run (runserver, the demo).
WHITENOISE_USE_FINDERS = True

# Celery: Redis in production; with no broker, tasks run in this process.
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", schemes=("redis", "rediss"), default=None)
TASKS_IN_PROCESS = CELERY_BROKER_URL is None
if TASKS_IN_PROCESS:
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", default="sync")
# Tasks must end well inside the visibility timeout, or Redis hands them to a second worker.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", default=3600, minimum=5)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", default=600, minimum=2)
if CELERY_TASK_TIME_LIMIT >= CELERY_VISIBILITY_TIMEOUT:
    raise SettingError("CELERY_TASK_TIME_LIMIT must be below CELERY_VISIBILITY_TIMEOUT")
# The soft limit lets a task record its failure before the hard limit kills it.
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - max(1, min(30, CELERY_TASK_TIME_LIMIT // 10))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # Tasks of a lost worker come back once the visibility timeout has passed; sweep for them often
    # enough that they do not wait much longer than that (kombu's default sweeps every 100 s).
    "unacked_restore_interval": max(1, min(10, CELERY_VISIBILITY_TIMEOUT // 4)),
    "unacked_restore_throttle": 1,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# A message is acknowledged when its task has ended, and one whose worker died goes back to the queue:
# every task is idempotent (the few that are not say so where they are defined).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A task running when the broker connection drops finishes its work (recorded in the database, so a
# redelivery does nothing twice) rather than being killed half-way.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# One message at a time per worker process: a long task never holds others back unseen.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A broker that restarts is back in seconds: keep trying to send for about 10 s before giving up.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 8, "interval_start": 0, "interval_step": 0.5, "interval_max": 2}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery closes the database connection before and after every task unless told to reuse it; a new
# connection per task cost more than a chunk's writes. config.celery closes connections that broke
# or outlived conn_max_age before each task instead, as Django does around requests.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", default=100000, minimum=1)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

# Timeouts of every outgoing HTTP call, in seconds (connect, read).
SYNC_HTTP_CONNECT_TIMEOUT = env_int("SYNC_HTTP_CONNECT_TIMEOUT", default=10, minimum=1)
SYNC_HTTP_READ_TIMEOUT = env_int("SYNC_HTTP_READ_TIMEOUT", default=60, minimum=1)
# The most a source's configuration or a sourceConfig may set either to (refused at save, and at a call).
SYNC_HTTP_MAX_TIMEOUT = env_int("SYNC_HTTP_MAX_TIMEOUT", default=600, minimum=1)
# Hostile or broken answers: a body larger than this (counted after gzip or deflate decoding), or one
# that takes longer than the total timeout to arrive (a read timeout only bounds the gap between two
# bytes), or a page with more objects, fails the page with a clear error.
SYNC_HTTP_MAX_RESPONSE_BYTES = env_int("SYNC_HTTP_MAX_RESPONSE_BYTES", default=50 * 2**20, minimum=1024)
SYNC_HTTP_TOTAL_TIMEOUT = env_int("SYNC_HTTP_TOTAL_TIMEOUT", default=300, minimum=1)
SYNC_MAX_PAGE_OBJECTS = env_int("SYNC_MAX_PAGE_OBJECTS", default=100_000, minimum=1)
# Bytes a page may hold in memory, its rows, records and the details of its objects together, and the
# most one value (a column, a field, a record) may hold (syncapp/budget.py): counted while reading, so a
# page over them fails naming the limit, and the run ends failed, before a worker runs out of memory.
SYNC_PAGE_MAX_BYTES = env_int("SYNC_PAGE_MAX_BYTES", default=64 * 2**20, minimum=1024)
SYNC_VALUE_MAX_BYTES = env_int("SYNC_VALUE_MAX_BYTES", default=16 * 2**20, minimum=1024)
if SYNC_VALUE_MAX_BYTES > SYNC_PAGE_MAX_BYTES:
    raise SettingError(
        f"SYNC_VALUE_MAX_BYTES ({SYNC_VALUE_MAX_BYTES}) must be at most SYNC_PAGE_MAX_BYTES ({SYNC_PAGE_MAX_BYTES})"
    )
# The most bytes of one object or answer a contract log keeps; a longer one is cut, and says so.
SYNC_LOG_VALUE_MAX_BYTES = env_int("SYNC_LOG_VALUE_MAX_BYTES", default=256 * 2**10, minimum=1024)
# Where sources and API targets may be (syncapp/egress.py): with an allow-list only its networks; else
# anything but loopback, link-local (metadata services), reserved and, when asked, private networks.
SYNC_ALLOWED_NETWORKS = env_networks("SYNC_ALLOWED_NETWORKS", default=[])
SYNC_DENY_PRIVATE_NETWORKS = env_bool("SYNC_DENY_PRIVATE_NETWORKS", default=False)
# Clients that may read /metrics without a token (a Prometheus server on the internal network): networks
# or addresses, comma-separated. Anyone else needs an API token of a staff user.
SYNC_METRICS_ALLOWED_NETWORKS = env_networks("SYNC_METRICS_ALLOWED_NETWORKS", default=[])
# Database sources (syncapp/sources/database.py): timeouts of a connection and of one statement, in
# seconds, and the directories whose SQLite files may be read (none by default: a file path is not a host
# the egress policy can judge).
SYNC_DATABASE_CONNECT_TIMEOUT = env_int("SYNC_DATABASE_CONNECT_TIMEOUT", default=10, minimum=1)
SYNC_DATABASE_STATEMENT_TIMEOUT = env_int("SYNC_DATABASE_STATEMENT_TIMEOUT", default=60, minimum=1)
SYNC_DATABASE_SOURCE_SQLITE_DIRS = env_dirs("SYNC_DATABASE_SOURCE_SQLITE_DIRS", default=[])
# A database source on the service's own PostgreSQL server, with a role that can read the service's tables,
# is refused unless this allows it (the service's own database always is): such a role could read API
# tokens and credentials (syncapp/sources/database.py service_database_refusal).
SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER = env_bool("SYNC_DATABASE_SOURCE_ALLOW_SERVICE_SERVER", default=False)
# A next link, Link header or redirect to another host than the source's: followed without the
# source's credentials (strip), or refused.
SYNC_CROSS_HOST_REQUESTS = env_choice("SYNC_CROSS_HOST_REQUESTS", default="strip", choices=("strip", "refuse"))
# `verify: false` in a source's configuration, a sourceConfig or a targetConfig turns TLS verification off
# for its calls (OpenConnector passes it to Guzzle): refused, at save and at a call, unless this allows it.
SYNC_TLS_VERIFY_OFF_ALLOWED = env_bool("SYNC_TLS_VERIFY_OFF_ALLOWED", default=False)
# Keys that encrypt credentials at rest (syncapp/sealing.py), newest first: the newest encrypts, all
# decrypt. Without them, a key derived from the secret key is used, and the service says so at start.
SYNC_CREDENTIAL_KEYS = tuple(env_list("SYNC_CREDENTIAL_KEYS", default=[]))
# The embedded service makes its own on first start, beside its secret key (config/keys.py).
if not SYNC_CREDENTIAL_KEYS and EMBEDDED:
    SYNC_CREDENTIAL_KEYS = (
        key_file_read_or_create(
            DATA_DIR / CREDENTIAL_KEY_FILE, make=credential_key_make, setting="SYNC_CREDENTIAL_KEYS"
        ),
    )
for _key in SYNC_CREDENTIAL_KEYS:
    try:
        if len(base64.urlsafe_b64decode(_key.encode())) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        raise SettingError(
            "SYNC_CREDENTIAL_KEYS holds a value that is not a Fernet key (32 url-safe base64-encoded bytes; "
            "`manage.py sync keygen` makes one)"
        ) from None
# File sources (syncapp/sources/file.py). Uploaded files, and the copy of a file at a URL that a run
# reads, are kept in the default storage: by default the media root, which every web process and worker
# must then see (one volume in docker-compose.yml), or a bucket (below). Nothing there is served over HTTP.
MEDIA_ROOT = Path(env_str("SYNC_MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "/media/"  # never routed: uploads are read by the workers only
# Where those files are kept: the media root above by default, or an S3-compatible object store (AWS S3,
# MinIO, Ceph, …, through django-storages) when SYNC_S3_BUCKET is set, which every web process and worker
# then reaches over the network instead of sharing a directory. Rules' files (SYNC_RULE_FILES_STORAGE,
# below) go to the same store unless given another alias. Keys may be left out where boto3 finds its own
# (AWS_* variables, an instance role).
SYNC_S3_BUCKET = env_str("SYNC_S3_BUCKET")
SYNC_S3_ENDPOINT_URL = env_url("SYNC_S3_ENDPOINT_URL", schemes=("http", "https"), default=None)
SYNC_S3_REGION = env_str("SYNC_S3_REGION")
SYNC_S3_ACCESS_KEY_ID = env_str("SYNC_S3_ACCESS_KEY_ID")
SYNC_S3_SECRET_ACCESS_KEY = env_str("SYNC_S3_SECRET_ACCESS_KEY")
# A folder inside the bucket, so one bucket can hold several installations.
SYNC_S3_PREFIX = env_str("SYNC_S3_PREFIX", default="").strip("/")
# path (https://host/bucket/key: MinIO and most S3-compatible stores) or virtual (https://bucket.host/key).
SYNC_S3_ADDRESSING_STYLE = env_choice(
    "SYNC_S3_ADDRESSING_STYLE", default="path" if SYNC_S3_ENDPOINT_URL else "virtual", choices=("path", "virtual")
)
if not SYNC_S3_BUCKET:
    _s3_set = [name for name in ("SYNC_S3_ENDPOINT_URL", "SYNC_S3_REGION", "SYNC_S3_ACCESS_KEY_ID",
                                 "SYNC_S3_SECRET_ACCESS_KEY", "SYNC_S3_PREFIX") if globals()[name]]
    if _s3_set:
        raise SettingError(f"{', '.join(_s3_set)} set without SYNC_S3_BUCKET: name the bucket the files go to")
elif bool(SYNC_S3_ACCESS_KEY_ID) != bool(SYNC_S3_SECRET_ACCESS_KEY):
    raise SettingError("SYNC_S3_ACCESS_KEY_ID and SYNC_S3_SECRET_ACCESS_KEY go together: set both, or neither")


STORAGES = {
    "default": (
        s3_storage(bucket=SYNC_S3_BUCKET, endpoint_url=SYNC_S3_ENDPOINT_URL, region=SYNC_S3_REGION,
                   access_key=SYNC_S3_ACCESS_KEY_ID, secret_key=SYNC_S3_SECRET_ACCESS_KEY, prefix=SYNC_S3_PREFIX,
                   addressing_style=SYNC_S3_ADDRESSING_STYLE)
        if SYNC_S3_BUCKET else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Local directories a file source may name as its location; none by default, so no path is read.
SYNC_FILE_ALLOWED_DIRS = tuple(env_list("SYNC_FILE_ALLOWED_DIRS", default=[]))
for _directory in SYNC_FILE_ALLOWED_DIRS:
    if not Path(_directory).is_absolute():
        raise SettingError(f"SYNC_FILE_ALLOWED_DIRS must hold absolute directories, got {_directory!r}")
# The largest file a source may download or upload, and the longest one record (a line, a CSV
# record, a JSON list element) may be: a file is read a page at a time, a record is read whole.
SYNC_FILE_MAX_BYTES = env_int("SYNC_FILE_MAX_BYTES", default=2 * 2**30, minimum=1024)
SYNC_FILE_MAX_RECORD_BYTES = env_int("SYNC_FILE_MAX_RECORD_BYTES", default=16 * 2**20, minimum=1024)
# How long the download of a file at a URL may take in all, in seconds (a large file takes longer
# than one page of an API, SYNC_HTTP_TOTAL_TIMEOUT); it happens inside a page task, so within its limit.
SYNC_FILE_DOWNLOAD_TIMEOUT = env_int(
    "SYNC_FILE_DOWNLOAD_TIMEOUT", default=max(1, CELERY_TASK_SOFT_TIME_LIMIT * 2 // 3), minimum=1
)
if SYNC_FILE_DOWNLOAD_TIMEOUT > CELERY_TASK_SOFT_TIME_LIMIT:
    raise SettingError(
        f"SYNC_FILE_DOWNLOAD_TIMEOUT ({SYNC_FILE_DOWNLOAD_TIMEOUT}) must be at most the task time limit "
        f"({CELERY_TASK_SOFT_TIME_LIMIT} s, from CELERY_TASK_TIME_LIMIT)"
    )

# Files that rules fetch or write (syncapp/rules/): the STORAGES alias they are kept in (default: the
# default storage, the media root or SYNC_S3_BUCKET's bucket; another alias added to STORAGES is named
# here), and the largest one file a fetch_file rule takes: a larger one fails its object.
SYNC_RULE_FILES_STORAGE = env_str("SYNC_RULE_FILES_STORAGE", default="default")
if SYNC_RULE_FILES_STORAGE not in STORAGES:
    raise SettingError(
        f"SYNC_RULE_FILES_STORAGE names {SYNC_RULE_FILES_STORAGE!r}, which is not in STORAGES "
        f"({', '.join(STORAGES)})"
    )
SYNC_RULE_FILE_MAX_BYTES = env_int("SYNC_RULE_FILE_MAX_BYTES", default=100 * 2**20, minimum=1)

# Safety limit on pages of one run when a synchronization sets no maxPages.
SYNC_DEFAULT_MAX_PAGES = env_int("SYNC_DEFAULT_MAX_PAGES", default=10000, minimum=1)

# Changed objects written by one task, in one transaction (a synchronization's sourceConfig.chunkSize
# overrides it), and pages fetched at once when the next requests are known ahead (sourceConfig.concurrency).
SYNC_CHUNK_SIZE = env_int("SYNC_CHUNK_SIZE", default=100, minimum=1)
SYNC_PAGE_CONCURRENCY = env_int("SYNC_PAGE_CONCURRENCY", default=4, minimum=1)
if SYNC_PAGE_CONCURRENCY > 32:
    raise SettingError(f"SYNC_PAGE_CONCURRENCY must be at most 32, got {SYNC_PAGE_CONCURRENCY}")
# A page task reads on (syncapp/runs/reading.py): it sends the next pages' requests from threads of its
# own while it plans the page it has, for this long; then it hands the pages after it to their own tasks.
SYNC_READ_AHEAD_SECONDS = env_float(
    "SYNC_READ_AHEAD_SECONDS", default=min(60.0, CELERY_TASK_SOFT_TIME_LIMIT / 2), minimum=0
)
if SYNC_READ_AHEAD_SECONDS > CELERY_TASK_SOFT_TIME_LIMIT / 2:
    raise SettingError(
        f"SYNC_READ_AHEAD_SECONDS must be at most half of CELERY_TASK_SOFT_TIME_LIMIT "
        f"({CELERY_TASK_SOFT_TIME_LIMIT} s, from CELERY_TASK_TIME_LIMIT), got {SYNC_READ_AHEAD_SECONDS}"
    )

# The drain of a schema's register changes waits this long after a save, so that a burst of saves is
# pushed by a handful of runs started after it (syncapp/pushes.py): a delayed task with a broker, a timer
# of the saving process in process (0: in process, right after the commit).
SYNC_PUSH_DELAY_SECONDS = env_float("SYNC_PUSH_DELAY_SECONDS", default=1.0, minimum=0)
if SYNC_PUSH_DELAY_SECONDS > 60:
    raise SettingError(f"SYNC_PUSH_DELAY_SECONDS must be at most 60, got {SYNC_PUSH_DELAY_SECONDS}")

# A running run whose tasks made no progress for this long lost its worker and is failed.
SYNC_RUN_STALE_SECONDS = env_int("SYNC_RUN_STALE_SECONDS", default=900, minimum=10)
# A run without progress for this long may have lost task messages (a broker restarted without its
# data): its queued pages and unfinished objects are sent again, once per this interval.
SYNC_RUN_RESEND_SECONDS = env_int("SYNC_RUN_RESEND_SECONDS", default=300, minimum=2)
if SYNC_RUN_RESEND_SECONDS >= SYNC_RUN_STALE_SECONDS:
    raise SettingError("SYNC_RUN_RESEND_SECONDS must be below SYNC_RUN_STALE_SECONDS")

# Rate limits and faults of sources and targets (SYNC.md section 9; syncapp/http.py).
# Attempts of a call that times out, loses its connection or gets a 5xx, with exponential backoff
# and jitter between them (seconds: the first wait, and the longest).
SYNC_HTTP_MAX_ATTEMPTS = env_int("SYNC_HTTP_MAX_ATTEMPTS", default=3, minimum=1)
SYNC_HTTP_BACKOFF_SECONDS = env_float("SYNC_HTTP_BACKOFF_SECONDS", default=0.5, minimum=0)
SYNC_HTTP_BACKOFF_MAX_SECONDS = env_float("SYNC_HTTP_BACKOFF_MAX_SECONDS", default=10, minimum=0)
# Waits a server asks for (Retry-After, a rate-limit reset, the request budget) up to this long happen
# inside the task; longer ones retry the task that much later, so no worker sits idle. An inline wait
# must leave the task time to do its work before the soft time limit.
SYNC_MAX_INLINE_WAIT = min(
    env_int("SYNC_MAX_INLINE_WAIT", default=30, minimum=0), max(0, CELERY_TASK_SOFT_TIME_LIMIT // 3)
)
# The longest wait honoured at all: a source asking for more fails its page (the run ends failed and
# deletes nothing). With tasks in process, every wait up to this happens inline.
SYNC_MAX_RATE_LIMIT_WAIT = env_int("SYNC_MAX_RATE_LIMIT_WAIT", default=3600, minimum=1)
# The longest wait a worker (or the in-process runner) ever sleeps or holds a task for: a page or object
# asked to wait longer is deferred, its due time recorded on it and on the run (`deferredUntil`), and the
# resend sweep sends it again once due. A wait beyond SYNC_MAX_RATE_LIMIT_WAIT still fails it.
SYNC_MAX_RETRY_AFTER_SECONDS = min(
    env_int("SYNC_MAX_RETRY_AFTER_SECONDS", default=300, minimum=1), SYNC_MAX_RATE_LIMIT_WAIT
)
# The longest countdown of a task retried for a rate limit; a longer wait takes several. Each retry
# moves the run's heartbeat, so the countdown stays below the re-send interval, and countdown plus
# time limit stay below the visibility timeout, or Redis would hand the waiting task to a second worker.
SYNC_TASK_COUNTDOWN_MAX = max(
    1, min(SYNC_RUN_RESEND_SECONDS // 2, (CELERY_VISIBILITY_TIMEOUT - CELERY_TASK_TIME_LIMIT) // 2)
)
# Where the request budgets of sources are kept for all workers together: by default the broker's
# Redis. With tasks in process and no SYNC_REDIS_URL, each process keeps its own (it is the only one).
SYNC_REDIS_URL = env_url(
    "SYNC_REDIS_URL", schemes=("redis", "rediss"), default=None if TASKS_IN_PROCESS else CELERY_BROKER_URL
)
# Contract logs and ended runs older than this are purged (each synchronization keeps its last run).
SYNC_LOG_RETENTION_DAYS = env_int("SYNC_LOG_RETENTION_DAYS", default=30, minimum=1)

# How often Celery beat looks for due schedules: a schedule with seconds (a sixth cron field) needs
# a tick at least that fine.
SYNC_SCHEDULE_TICK_SECONDS = env_int("SYNC_SCHEDULE_TICK_SECONDS", default=60, minimum=1)

CELERY_BEAT_SCHEDULE = {
    "start-scheduled-synchronizations": {
        "task": "workers.tasks.start_scheduled_runs", "schedule": float(SYNC_SCHEDULE_TICK_SECONDS),
    },
    "resend-stalled-runs": {"task": "workers.tasks.resend_stalled_runs", "schedule": 60.0},
    "drain-outbox": {"task": "workers.tasks.drain_outbox", "schedule": 60.0},
    "fail-stale-runs": {"task": "workers.tasks.fail_stale_runs", "schedule": 60.0},
    "purge-old-logs": {"task": "workers.tasks.purge_old_logs", "schedule": 3600.0},
}

REST_FRAMEWORK = {
    # Token first: an anonymous request is answered 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Tokens are stored as digests (syncapp/tokens.py): a token read from the database does not authenticate.
        "syncapp.tokens.DigestTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    # Staff with the permission of the model and action (syncapp/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": ["syncapp.permissions.ModelActionPermission"],
    # drf-spectacular's, with the refusals (400/401/403/404) each operation can answer (syncapp/openapi.py).
    "DEFAULT_SCHEMA_CLASS": "syncapp.openapi.SyncAutoSchema",
    # django-filter FilterSets per list, and a query parameter no filter knows refused (syncapp/filters.py).
    "DEFAULT_FILTER_BACKENDS": ["syncapp.filters.StrictFilterBackend"],
    # Errors not about one field, named like the fields: camelCase.
    "NON_FIELD_ERRORS_KEY": "nonFieldErrors",
    # A deletion other records prevent is a 409 naming them, not a server error.
    "EXCEPTION_HANDLER": "syncapp.api_errors.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "syncapp.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # limit/offset, bounded so that no request asks the database for more than it can count.
    "DEFAULT_PAGINATION_CLASS": "syncapp.api_errors.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Synchronization service API",
    "DESCRIPTION": "Sources, mappings, synchronizations, the register, runs and contracts.",
    "VERSION": "0.1.0",
    # A synchronization's source and target types are the same choice set: name it once.
    "ENUM_NAME_OVERRIDES": {"EndpointTypeEnum": "syncapp.kinds.writer_choices"},
    # The declared configurations of every kind (sourceConfig, targetConfig, a source's configuration).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums", "syncapp.openapi.declarations_add",
    ],
    # The description of the API is for its users: staff, not anyone who finds the URL.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = env_str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise SettingError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
# plain: `time level logger message [run=… page=…]`; json: one JSON object a line (time, level, logger,
# message, exception, and the run, synchronization, page and chunk ids of the work it was written for),
# for a log collector to follow one run across workers (syncapp/structured_logs.py).
LOG_FORMAT = env_choice("LOG_FORMAT", default="plain", choices=("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "syncapp.structured_logs.PlainFormatter"},
        "json": {"()": "syncapp.structured_logs.JsonFormatter"},
    },
    # The ids of the work being done, and the URLs in a message masked, whichever the format.
    "filters": {"work": {"()": "syncapp.structured_logs.WorkContextFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["work"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"urllib3": {"level": "WARNING"}},
}
