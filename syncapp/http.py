"""One HTTP client for sources and API targets: request budgets, rate limits, retries and waits (SYNC.md §9).

Every outgoing call of the service goes through `http_request`, which in this order:

1. respects the rate-limit state stored on the source (`rate_limit_*`): when an earlier answer, of
   this worker or any other, said no request is left until a reset, it waits for the reset;
2. keeps the source's request budget, `configuration.rateLimit` (`{"requests": 10, "per": "second"}`),
   together with every other worker: a sliding window in Redis (SYNC_REDIS_URL, by default the broker);
   without Redis (tasks in process) the window lives in this process, which then is the only worker;
3. sends the request, and stores the `X-RateLimit-Limit/-Remaining/-Reset/-Window` (or `RateLimit-*`)
   headers of the answer, in any letter case, on the source;
4. classifies the answer, with tenacity doing the waiting:
   - 429 and 503 with `Retry-After` (seconds or an HTTP date) or a reset header: wait what the server
     asked and try again; a 429 or 503 without them is retried like a 5xx;
   - other 5xx, timeouts and dropped connections: exponential backoff with jitter, at most
     SYNC_HTTP_MAX_ATTEMPTS attempts, then `TransientHttpError`;
   - anything else, 4xx included, is returned at once for the caller to judge.

Waits up to SYNC_MAX_INLINE_WAIT seconds happen here, inside the task. A longer one (or too many in a
row) raises `RateLimited` with the seconds still to wait: the Celery task then retries itself that much
later instead of holding a worker. With tasks in process every wait up to SYNC_MAX_RETRY_AFTER_SECONDS
happens here. A wait beyond SYNC_MAX_RETRY_AFTER_SECONDS is never slept on: the page or object is
deferred until it is due (syncapp.runs.resend). Every wait is logged with the URL and its
reason, and reported to `on_wait`, which counts it on the run.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import urljoin

import requests
import requests.adapters
import urllib3
import urllib3.connection
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter
from urllib3 import exceptions as urllib3_exceptions

from syncapp import metrics
from syncapp.egress import EgressRefused, cross_host_refused, peer_check, same_origin, url_check
from syncapp.errors import SyncError
from syncapp.models import Source
from syncapp.outbound.masking import mask_url, snippet
from syncapp.outbound.urls import url_without_params

logger = logging.getLogger(__name__)

RATE_LIMIT_STATUSES = frozenset({429, 503})
# A reset above this is a moment (epoch seconds), below it a number of seconds to wait: no API asks
# to wait 30 years, and no reset lies before 2001.
EPOCH_THRESHOLD = 1_000_000_000
# A budget window is kept this much longer than configured: between taking a slot and the request
# reaching the server lies a small, varying delay, and a server counting per second must never see
# one request too many because of it.
BUDGET_GUARD_SECONDS = 0.1
# Rate-limit answers honoured inline per call with tasks on Celery; the next one re-schedules the task.
MAX_INLINE_RATE_WAITS = 5
# With tasks in process there is no one to hand a wait to: honour this many before giving up.
MAX_IN_PROCESS_RATE_WAITS = 50
# How long the request budget keeps trying to reach Redis before the call fails.
BUDGET_REDIS_PATIENCE_SECONDS = 15
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

OnWait = Callable[["Wait"], None]


class HttpError(SyncError):
    """The call failed for good; the message names the method, the URL (secrets masked) and why."""


class TransientHttpError(HttpError):
    """The call kept failing in a way that may pass (timeouts, dropped connections, 5xx) until attempts ran out."""


class RateLimited(SyncError):
    """The server (or the source's budget) asks to wait longer than may be waited inside the call."""

    def __init__(self, message: str, *, wait_seconds: float, url: str):
        super().__init__(message)
        self.wait_seconds = wait_seconds
        self.url = url


@dataclass(frozen=True)
class Wait:
    """A wait about to happen: `retry` when a call is repeated, not when it waits for its turn."""

    url: str
    reason: str
    seconds: float
    retry: bool


@dataclass(frozen=True)
class Budget:
    """At most `requests` calls to a source in any `per` seconds, by all workers together."""

    requests: int
    per: float

    def describe(self) -> str:
        return f"{self.requests} requests per {self.per:g} s"


@dataclass(frozen=True)
class RateLimitState:
    """What an answer said about the server's own limit; None where it said nothing."""

    limit: int | None = None
    remaining: int | None = None
    reset: datetime | None = None
    window: int | None = None

    def is_empty(self) -> bool:
        return self.limit is None and self.remaining is None and self.reset is None and self.window is None


# ---------------------------------------------------------------------------------------------
# Reading headers


def header(headers: Mapping[str, str], *names: str) -> str | None:
    """Return the first of the named headers present, in any letter case."""
    lowered = {str(key).lower(): value for key, value in headers.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    # `RateLimit-Limit: 100, 100;w=60` and friends: the first number is the one that counts now.
    first = value.split(",", 1)[0].split(";", 1)[0].strip()
    try:
        number = float(first)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Return the wait a `Retry-After` asks for, as seconds or as an HTTP date; None if unreadable."""
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


def reset_moment(value: str | None, *, now: datetime) -> datetime | None:
    """Return when a reset header says the limit resets: epoch seconds (or milliseconds), or seconds to wait."""
    number = _number(value)
    if number is None or number < 0:
        return None
    if number >= EPOCH_THRESHOLD * 1000:
        number /= 1000  # epoch milliseconds
    if number >= EPOCH_THRESHOLD:
        try:
            return datetime.fromtimestamp(number, tz=now.tzinfo)
        except (OverflowError, OSError, ValueError):
            return None
    return now + timedelta(seconds=number)


def _window(headers: Mapping[str, str]) -> int | None:
    value = header(headers, "x-ratelimit-window", "ratelimit-window", "x-ratelimit-period")
    if value is None:
        policy = header(headers, "ratelimit-policy", "x-ratelimit-policy") or ""
        for part in policy.split(";")[1:]:
            key, _, number = part.partition("=")
            if key.strip() == "w":
                value = number
                break
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


def rate_limit_state(headers: Mapping[str, str], *, now: datetime) -> RateLimitState:
    """Return the rate-limit headers of an answer: X-RateLimit-* or RateLimit-*, in any letter case."""
    def whole(*names: str) -> int | None:
        number = _number(header(headers, *names))
        return None if number is None else int(number)

    return RateLimitState(
        limit=whole("x-ratelimit-limit", "ratelimit-limit", "x-rate-limit-limit"),
        remaining=whole("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining"),
        reset=reset_moment(header(headers, "x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset"), now=now),
        window=_window(headers),
    )


# ---------------------------------------------------------------------------------------------
# The rate-limit state stored on the source


def state_store(source: Source | None, state: RateLimitState) -> None:
    """Store what the server said of its limit on the source, for every worker and the next run."""
    if source is None or state.is_empty():
        return
    fields = {
        f"rate_limit_{name}": value
        for name, value in (
            ("limit", state.limit), ("remaining", state.remaining), ("reset", state.reset), ("window", state.window)
        )
        if value is not None
    }
    for name, value in fields.items():
        setattr(source, name, value)
    if source.pk is not None:
        # Only these columns: the rest of the row belongs to the admin and to the token cache.
        Source.objects.filter(pk=source.pk).update(**fields)


def _stored_limit(*, source_id: int) -> tuple[int | None, datetime | None] | None:
    """Return the source's stored requests left and reset moment, None without the source. Raw SQL on
    PostgreSQL (aware datetimes, as the ORM gives them): every request of a run reads it, and the ORM took
    seven times the CPU of the read itself to build it; elsewhere the ORM, which makes SQLite's aware."""
    if connection.vendor != "postgresql":
        return Source.objects.filter(pk=source_id).values_list("rate_limit_remaining", "rate_limit_reset").first()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT rate_limit_remaining, rate_limit_reset FROM {Source._meta.db_table} WHERE id = %s",
                       [source_id])
        return cursor.fetchone()


def state_wait(source: Source | None, *, now: datetime) -> float:
    """Take one of the requests the source has left, or return the seconds until its limit resets.

    The count is taken in one UPDATE, so workers together never spend more than the server said is
    left. A reset in the past means the stored state is over: the next answer brings a new one.
    """
    if source is None:
        return 0.0
    if source.pk is None:
        remaining, reset = source.rate_limit_remaining, source.rate_limit_reset
        if remaining is None or reset is None or reset <= now:
            return 0.0
        if remaining > 0:
            source.rate_limit_remaining = remaining - 1
            return 0.0
        return (reset - now).total_seconds()
    # Most sources keep no limit, or one that has reset: one read tells, and only a live limit costs a write.
    stored = _stored_limit(source_id=source.pk)
    if stored is None or stored[0] is None or stored[1] is None:
        return 0.0
    if stored[1] <= now:
        return 0.0
    taken = Source.objects.filter(pk=source.pk, rate_limit_remaining__gt=0, rate_limit_reset__gt=now).update(
        rate_limit_remaining=F("rate_limit_remaining") - 1
    )
    if taken:
        return 0.0
    row = Source.objects.filter(pk=source.pk).values("rate_limit_remaining", "rate_limit_reset").first()
    if row and row["rate_limit_remaining"] is not None and row["rate_limit_reset"] is not None and (
        row["rate_limit_remaining"] <= 0 and row["rate_limit_reset"] > now
    ):
        return (row["rate_limit_reset"] - now).total_seconds()
    return 0.0


# ---------------------------------------------------------------------------------------------
# Request budgets


def budget_problems(value: Any, *, path: str) -> list[str]:
    """Return the problems of a `rateLimit` setting, with their path."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [f'{path}: must be an object like {{"requests": 10, "per": "second"}}']
    problems = []
    requests_ = value.get("requests")
    if isinstance(requests_, bool) or not isinstance(requests_, int) or requests_ < 1:
        problems.append(f"{path}.requests: must be a whole number of at least 1, got {requests_!r}")
    per = value.get("per", "second")
    if _per_seconds(per) is None:
        problems.append(
            f"{path}.per: must be second, minute, hour, day or a number of seconds above 0, got {per!r}"
        )
    unknown = sorted(set(value) - {"requests", "per"})
    if unknown:
        problems.append(f"{path}: unknown key(s) {', '.join(unknown)}; use requests and per")
    return problems


def _per_seconds(value: Any) -> float | None:
    if isinstance(value, str):
        unit = value.strip().lower()
        unit = unit[:-1] if unit.endswith("s") and unit[:-1] in UNITS else unit
        if unit in UNITS:
            return float(UNITS[unit])
        try:
            value = float(unit)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def budget_of(source: Source | None) -> Budget | None:
    """Return the request budget of a source's configuration, or None when it has none."""
    configuration = getattr(source, "configuration", None)
    value = configuration.get("rateLimit") if isinstance(configuration, dict) else None
    if value is None or budget_problems(value, path="rateLimit"):
        return None  # refused when the source is saved or imported; an old bad value means no budget
    return Budget(requests=int(value["requests"]), per=_per_seconds(value.get("per", "second")) or 1.0)


# A sliding window: at most ARGV[1] members in any ARGV[2] microseconds, by the Redis server's clock
# so the workers' clocks do not matter. Returns 0 when a slot was taken, else microseconds to wait.
_WINDOW_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

_lock = threading.Lock()
_redis_scripts: dict[str, Any] = {}
_local_windows: dict[str, deque[float]] = {}


def _redis_take(*, url: str, key: str, budget: Budget) -> float:
    import redis

    with _lock:
        script = _redis_scripts.get(url)
        if script is None:
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            script = _redis_scripts[url] = client.register_script(_WINDOW_SCRIPT)
    window = int((budget.per + BUDGET_GUARD_SECONDS) * 1_000_000)
    deadline = time.monotonic() + BUDGET_REDIS_PATIENCE_SECONDS
    while True:
        try:
            micros = script(keys=[key], args=[budget.requests, window, uuid.uuid4().hex])
            return int(micros) / 1_000_000
        except (redis.ConnectionError, redis.TimeoutError) as error:
            # A restarting Redis is back in moments; the budget must not be skipped meanwhile.
            if time.monotonic() > deadline:
                raise TransientHttpError(f"the request budget cannot be kept: Redis is unreachable ({error})") from None
            time.sleep(0.5)


def _local_take(*, key: str, budget: Budget) -> float:
    window = budget.per + BUDGET_GUARD_SECONDS
    with _lock:
        taken = _local_windows.setdefault(key, deque())
        now = time.monotonic()
        while taken and taken[0] <= now - window:
            taken.popleft()
        if len(taken) < budget.requests:
            taken.append(now)
            return 0.0
        return max(0.001, taken[0] + window - now)


def budget_take(*, source: Source, budget: Budget) -> float:
    """Take a slot of the source's budget; return 0, or the seconds until one frees up (nothing taken)."""
    # Named after the database too: services (or test sessions) sharing one Redis keep apart budgets.
    key = f"sync:{connection.settings_dict['NAME']}:budget:{source.pk or source.reference}"
    url = settings.SYNC_REDIS_URL
    if url:
        return _redis_take(url=url, key=key, budget=budget)
    # No Redis (tasks in process): this process is the only worker, so its own window is the budget.
    return _local_take(key=key, budget=budget)


# ---------------------------------------------------------------------------------------------
# Sessions

# Environment variables that change what requests does when it trusts the environment.
_ENVIRONMENT_KNOBS = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
)
_sessions: dict[tuple[int, int, str], requests.Session] = {}


def _trust_environment() -> bool:
    """Return whether proxies or CA bundles are configured in the environment, for requests to honour.

    Without them, trusting the environment only costs: requests looks for proxies and .netrc files
    on every call.
    """
    return any(os.environ.get(name) for name in _ENVIRONMENT_KNOBS)


class _Deadline:
    """Cut the connection of one call when its total time is up, wherever the call is waiting.

    A socket timeout bounds each read, not the answer: a server sending its status line and headers a
    byte at a time would never time out. A timer shuts the connection's socket down at the deadline,
    which ends a read blocked on it at once; the call then knows why its connection ended.
    """

    def __init__(self, *, seconds: float):
        self.expired = False
        self.connection: Any = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _watching.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _watching.deadline = None

    def watch(self, connection: Any) -> None:
        """Make `connection` the one to cut; refuse to go on once the time is up."""
        with self._lock:
            self.connection = connection
            expired = self.expired
        if expired:
            raise TimeoutError("the total timeout passed")

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            sock = getattr(self.connection, "sock", None)
        if sock is not None:
            # The plain socket's shutdown, also under TLS: SSLSocket's own unwraps it, racing the reader.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


# The deadline of the call this thread is making, for its connections to register with.
_watching = threading.local()


class _CheckedConnectionMixin:
    """Check the address each new connection reached against the egress policy (see egress.peer_check),
    and hand the connection a request goes out on to the call's deadline."""

    def request(self, *args, **kwargs):
        deadline = getattr(_watching, "deadline", None)
        if deadline is not None:
            deadline.watch(self)
        return super().request(*args, **kwargs)

    def _new_conn(self):
        sock = super()._new_conn()
        # Through a proxy the peer is the proxy, the operator's own: the URL was checked before.
        if getattr(self, "proxy", None) is None and not getattr(self, "_tunnel_host", None):
            try:
                peer_check(sock, host=self.host)
            except EgressRefused:
                sock.close()
                raise
        return sock


class _CheckedHTTPConnection(_CheckedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _CheckedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class CheckedAdapter(requests.adapters.HTTPAdapter):
    """A transport whose connections are checked against the egress policy once connected."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def session_for(source: Source | None) -> requests.Session:
    """Return the keep-alive session of this process and thread for the source."""
    key = (os.getpid(), threading.get_ident(), f"{getattr(source, 'pk', None)}:{getattr(source, 'reference', '')}")
    session = _sessions.get(key)
    if session is None:
        session = requests.Session()
        session.trust_env = _trust_environment()
        for prefix in ("http://", "https://"):
            session.mount(prefix, CheckedAdapter())
        with _lock:
            if len(_sessions) > 256:  # threads and sources come and go: do not keep their sessions forever
                for stale in list(_sessions)[:128]:
                    _sessions.pop(stale).close()
            _sessions[key] = session
    return session


# ---------------------------------------------------------------------------------------------
# Answers

MAX_REDIRECTS = 10
READ_SIZE = 64 * 1024
# Headers that carry credentials whoever set them: never sent to another host.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def without_credentials(headers: Mapping[str, str], *, names: frozenset[str]) -> dict[str, str]:
    """Return the headers without those that carry credentials."""
    drop = CREDENTIAL_HEADERS | {name.lower() for name in names}
    return {name: value for name, value in headers.items() if name.lower() not in drop}


@dataclass(frozen=True)
class BodyLimits:
    """How large a body may be and how long it may take to arrive, with the settings that say so."""

    max_bytes: int
    max_bytes_setting: str
    seconds: float
    seconds_setting: str


def body_limits() -> BodyLimits:
    """Return the limits of an answer read into memory."""
    return BodyLimits(
        max_bytes=settings.SYNC_HTTP_MAX_RESPONSE_BYTES, max_bytes_setting="SYNC_HTTP_MAX_RESPONSE_BYTES",
        seconds=settings.SYNC_HTTP_TOTAL_TIMEOUT, seconds_setting="SYNC_HTTP_TOTAL_TIMEOUT",
    )


def body_read(
    response: requests.Response, *, deadline: float, call: str, sink: BinaryIO | None = None,
    limits: BodyLimits | None = None,
) -> None:
    """Read the whole body into the response (or into `sink`), refusing one that is too large or too slow.

    The size counts decoded bytes, so a small gzip bomb is stopped as early as a large body; urllib3
    decodes only as much as each read asks for. The deadline is checked between reads, each of which
    returns what has arrived, so a body sent a byte at a time is cut too. A body written to `sink`
    (a file, emptied first: an attempt repeated starts over) leaves the response's content empty.
    """
    limits = limits or body_limits()
    limit = limits.max_bytes
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit and not response.headers.get("Content-Encoding"):
        raise HttpError(f"{call}: the answer has {int(declared):,} bytes, more than {limit:,} "
                        f"({limits.max_bytes_setting})")
    body = bytearray()
    size = 0
    if sink is not None:
        sink.seek(0)
        sink.truncate()
    try:
        while chunk := response.raw.read1(READ_SIZE, decode_content=True):
            size += len(chunk)
            if sink is not None:
                try:
                    sink.write(chunk)
                except OSError as error:
                    # Our disk, not the network: another attempt would meet it again.
                    raise HttpError(f"{call}: the answer could not be stored ({error})") from None
            else:
                body += chunk
            if size > limit:
                raise HttpError(f"{call}: the answer is larger than {limit:,} bytes"
                                f"{' once decoded' if response.headers.get('Content-Encoding') else ''} "
                                f"({limits.max_bytes_setting})")
            if time.monotonic() > deadline:
                raise HttpError(f"{call}: the answer did not arrive whole within "
                                f"{limits.seconds:g} s ({limits.seconds_setting})")
    except urllib3_exceptions.DecodeError as error:
        raise HttpError(f"{call}: the answer could not be decoded ({error})") from None
    except (TimeoutError, urllib3_exceptions.ReadTimeoutError) as error:
        raise requests.Timeout(str(error)) from None
    except (urllib3_exceptions.ProtocolError, urllib3_exceptions.IncompleteRead, OSError) as error:
        raise requests.exceptions.ChunkedEncodingError(str(error)) from None
    response._content = bytes(body)
    response._content_consumed = True


# ---------------------------------------------------------------------------------------------
# Calls


@dataclass(frozen=True)
class Limits:
    """How long and how often one call may wait inside itself."""

    max_inline_wait: float
    max_rate_waits: int
    max_attempts: int


def retry_after_bound() -> float:
    """Return the longest wait a worker or the in-process runner may hold: longer ones are deferred."""
    return float(min(settings.SYNC_MAX_RETRY_AFTER_SECONDS, settings.SYNC_MAX_RATE_LIMIT_WAIT))


def call_limits() -> Limits:
    """Return the waiting limits of a call: short with a Celery worker to hand long waits to, long in process."""
    if settings.TASKS_IN_PROCESS:
        return Limits(
            max_inline_wait=retry_after_bound(),
            max_rate_waits=MAX_IN_PROCESS_RATE_WAITS,
            max_attempts=settings.SYNC_HTTP_MAX_ATTEMPTS,
        )
    return Limits(
        max_inline_wait=min(float(settings.SYNC_MAX_INLINE_WAIT), retry_after_bound()),
        max_rate_waits=MAX_INLINE_RATE_WAITS,
        max_attempts=settings.SYNC_HTTP_MAX_ATTEMPTS,
    )


class _Again(Exception):
    """An attempt worth repeating: `wait` is what the server asked for, None for backoff."""

    def __init__(self, message: str, *, reason: str, wait: float | None):
        super().__init__(message)
        self.reason = reason
        self.wait = wait


@dataclass
class _Call:
    method: str
    url: str
    shown: str
    source: Source | None
    limits: Limits
    on_wait: OnWait | None
    options: dict[str, Any]
    secret_params: frozenset[str]
    secret_headers: frozenset[str] = frozenset()
    secrets: tuple[str, ...] = ()
    failures: int = 0
    rate_waits: int = 0
    # Where a successful answer's body goes instead of memory (a file download), and its limits.
    sink: BinaryIO | None = None
    body_limits: BodyLimits | None = None

    @property
    def source_label(self) -> str:
        """Return the source as metrics name it: its reference, or `none` for a call of no source."""
        return getattr(self.source, "reference", "") or "none"

    def report(self, *, reason: str, seconds: float, retry: bool) -> None:
        log = logger.warning if retry else logger.info
        log("%s %s: %s; waiting %.2f s", self.method, self.shown, reason, seconds)
        metrics.wait_record(source=self.source_label, retry=retry, seconds=seconds)
        if self.on_wait is not None:
            self.on_wait(Wait(url=self.shown, reason=reason, seconds=seconds, retry=retry))

    def wait_inline_or_raise(self, *, seconds: float, reason: str, retry: bool) -> None:
        """Wait here when the wait is short enough; else raise RateLimited for the task to retry later."""
        if seconds > self.limits.max_inline_wait:
            raise RateLimited(
                f"{self.method} {self.shown}: {reason}; {seconds:.0f} s is longer than may be waited inside a call",
                wait_seconds=seconds, url=self.shown,
            )
        self.report(reason=reason, seconds=seconds, retry=retry)
        time.sleep(seconds)

    def before(self) -> None:
        """Wait for the stored rate limit to reset and for a slot of the budget."""
        seconds = state_wait(self.source, now=timezone.now())
        if seconds > 0:
            self.wait_inline_or_raise(
                seconds=seconds, retry=False,
                reason="the source's stored rate limit has no requests left until it resets",
            )
        budget = budget_of(self.source)
        if budget is None:
            return
        waited = 0.0
        while (seconds := budget_take(source=self.source, budget=budget)) > 0:
            metrics.budget_record(source=self.source_label, taken=False)
            # The budget's own wait is short (at most its window), but a long window is handed on too.
            waited += seconds
            if waited > self.limits.max_inline_wait:
                raise RateLimited(
                    f"{self.method} {self.shown}: the request budget ({budget.describe()}) is spent",
                    wait_seconds=seconds, url=self.shown,
                )
            self.report(reason=f"request budget of {budget.describe()}", seconds=seconds, retry=False)
            time.sleep(seconds)
        metrics.budget_record(source=self.source_label, taken=True)

    def attempt(self) -> requests.Response:
        self.before()
        started = time.monotonic()
        try:
            response = self.send()
        except BaseException:
            metrics.http_answer_record(source=self.source_label, status=None, seconds=time.monotonic() - started)
            raise
        metrics.http_answer_record(
            source=self.source_label, status=response.status_code, seconds=time.monotonic() - started
        )
        return self.judge(response)

    def send(self) -> requests.Response:
        """Send the request and read its answer; turn what went wrong on the way into the call's errors."""
        try:
            return self.transfer()
        except requests.exceptions.SSLError as error:
            # A certificate that does not verify will not verify on a retry either.
            raise HttpError(
                f"{self.method} {self.shown}: TLS failed ({error}); set verify to the CA bundle "
                "(a path, or the certificate as PEM text)"
            ) from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            self.failures += 1
            raise _Again(
                f"{self.method} {self.shown}: {type(error).__name__}: {error}", reason=type(error).__name__, wait=None
            ) from None
        except requests.RequestException as error:
            raise HttpError(f"{self.method} {self.shown}: {type(error).__name__}: {error}") from None

    def transfer(self) -> requests.Response:
        """Send the request, following redirects here: each hop's address is checked, and a hop to another
        host goes without the credentials (or is refused); then read the body within its limits."""
        method, url, options = self.method, self.url, dict(self.options)
        limits = self.body_limits or body_limits()
        deadline = time.monotonic() + limits.seconds
        late = HttpError(f"{self.method} {self.shown}: the answer did not arrive whole within "
                         f"{limits.seconds:g} s ({limits.seconds_setting})")
        with _Deadline(seconds=limits.seconds) as cutter:
            try:
                response = self._send_within(
                    method=method, url=url, options=options, deadline=deadline, limits=limits
                )
            except (requests.RequestException, HttpError, OSError, ValueError):
                if not cutter.expired:
                    raise
                raise late from None
        # A connection cut while the headers came reads as headers that ended there and an empty body:
        # whatever was read is not the answer.
        if cutter.expired:
            response.close()
            raise late
        return response

    def _send_within(
        self, *, method: str, url: str, options: dict[str, Any], deadline: float, limits: BodyLimits,
    ) -> requests.Response:
        session = session_for(self.source)
        for _ in range(MAX_REDIRECTS + 1):
            # Connecting counts against the total time too.
            connect, read = options["timeout"]
            options["timeout"] = (max(0.001, min(connect, deadline - time.monotonic())), read)
            try:
                url_check(url)
            except EgressRefused as refused:
                shown = mask_url(url, secret_params=self.secret_params)
                raise HttpError(f"{method} {shown}: refused: {refused}") from None
            try:
                response = session.request(method, url, allow_redirects=False, stream=True, **options)
            except EgressRefused as refused:
                shown = mask_url(url, secret_params=self.secret_params)
                raise HttpError(f"{method} {shown}: refused: {refused}") from None
            if not (response.is_redirect and response.headers.get("Location")):
                # Only a successful answer goes to the sink: an error's body is read to be quoted.
                sink = self.sink if 200 <= response.status_code < 300 else None
                try:
                    body_read(response, deadline=deadline, call=f"{method} {self.shown}", sink=sink,
                              limits=limits if sink is not None else None)
                except BaseException:
                    response.close()  # a connection left half read serves no other request
                    raise
                response.raw.release_conn()  # read whole: the connection goes back to the keep-alive pool
                return response
            target = urljoin(response.url, response.headers["Location"])
            response.close()
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method = "GET"
                options.update(json=None, data=None)
            if not same_origin(target, self.url):
                elsewhere = f"{method} {self.shown}: redirected to another host ({mask_url(target)})"
                if cross_host_refused():
                    raise HttpError(f"{elsewhere}; SYNC_CROSS_HOST_REQUESTS is refuse")
                if options.get("json") is not None or options.get("data") is not None:
                    raise HttpError(f"{elsewhere} with the request's body, which may hold secrets: not followed")
                options["headers"] = without_credentials(options.get("headers") or {}, names=self.secret_headers)
                target = url_without_params(target, self.secret_params)
            # The query asked for is in the URL the server redirected to, if it wants it.
            options["params"] = {}
            url = target
        raise HttpError(f"{self.method} {self.shown}: more than {MAX_REDIRECTS} redirects")

    def judge(self, response: requests.Response) -> requests.Response:
        """Return an answer to hand back, or raise to wait and ask again."""
        now = timezone.now()
        status = response.status_code
        state = rate_limit_state(response.headers, now=now)
        asked = None
        if status in RATE_LIMIT_STATUSES:
            asked = retry_after_seconds(header(response.headers, "retry-after"), now=now)
            reason = f"answered {status} with Retry-After {header(response.headers, 'retry-after')}"
            if asked is None and state.reset is not None and (status == 429 or state.remaining == 0):
                asked = max(0.0, (state.reset - now).total_seconds())
                reason = f"answered {status}, the rate limit resets in {asked:.2f} s"
            if asked is not None:
                # Every worker waits for this, also in the next run: nothing is left until then.
                state = RateLimitState(
                    limit=state.limit, remaining=0, reset=now + timedelta(seconds=asked), window=state.window
                )
        state_store(self.source, state)
        if status < 500 and status != 429:
            return response
        shown = mask_url(response.url or self.url, secret_params=self.secret_params)
        content_type = response.headers.get("Content-Type") or "no content type"
        message = f"{self.method} {shown} answered {status} ({content_type}): {snippet(response.text, self.secrets)!r}"
        if asked is not None:
            self.rate_waits += 1
            if self.rate_waits > self.limits.max_rate_waits:
                raise RateLimited(
                    f"{message}; rate limited {self.rate_waits} times in a row", wait_seconds=asked, url=shown
                )
            if asked > self.limits.max_inline_wait:
                raise RateLimited(message, wait_seconds=asked, url=shown)
            raise _Again(message, reason=reason, wait=asked)
        self.failures += 1
        raise _Again(message, reason=f"answered {status}", wait=None)


def http_request(
    *,
    method: str,
    url: str,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: Any = None,
    timeout: tuple[float, float],
    verify: bool | str = True,
    source: Source | None = None,
    secret_params: frozenset[str] = frozenset(),
    secret_headers: frozenset[str] = frozenset(),
    secrets: Iterable[str] = (),
    on_wait: OnWait | None = None,
    limits: Limits | None = None,
    sink: BinaryIO | None = None,
    sink_limits: BodyLimits | None = None,
) -> requests.Response:
    """Send one request under the source's rate limits and budget, retrying what may pass.

    Return the answer when it is not a 5xx or 429 (4xx included: the caller judges them). Raise
    TransientHttpError when retries ran out, HttpError for what no retry mends, and RateLimited when
    the wait asked for is longer than may be waited here. With `sink`, a 2xx answer's body is written
    there, within `sink_limits`, instead of being kept in memory.
    """
    limits = limits or call_limits()
    call = _Call(
        method=method.upper(), url=url, shown=mask_url(url, secret_params=secret_params), source=source,
        limits=limits, on_wait=on_wait, secret_params=secret_params, secret_headers=secret_headers,
        secrets=tuple(secrets), sink=sink, body_limits=sink_limits,
        options={
            "params": dict(params or {}), "headers": dict(headers or {}), "json": json, "data": data,
            "timeout": timeout, "verify": verify,
        },
    )
    backoff = wait_exponential_jitter(
        multiplier=settings.SYNC_HTTP_BACKOFF_SECONDS, max=settings.SYNC_HTTP_BACKOFF_MAX_SECONDS,
        jitter=settings.SYNC_HTTP_BACKOFF_SECONDS,
    )

    def wait(state: RetryCallState) -> float:
        again = state.outcome.exception()
        if again.wait is not None:
            return again.wait
        # The backoff grows with the failures only: waits the server asked for do not count.
        return backoff(_failure_state(state, call.failures))

    def stop(state: RetryCallState) -> bool:
        again = state.outcome.exception()
        return again.wait is None and call.failures >= limits.max_attempts

    def before_sleep(state: RetryCallState) -> None:
        again = state.outcome.exception()
        call.report(reason=again.reason, seconds=state.upcoming_sleep, retry=True)

    retrying = Retrying(
        retry=retry_if_exception_type(_Again), wait=wait, stop=stop, before_sleep=before_sleep, reraise=True,
    )
    try:
        return retrying(call.attempt)
    except _Again as again:
        raise TransientHttpError(f"{again} (after {call.failures} attempts)") from None


def _failure_state(state: RetryCallState, failures: int) -> RetryCallState:
    """Return a copy of the retry state whose attempt number is the number of failures so far."""
    copy = RetryCallState(state.retry_object, state.fn, state.args, state.kwargs)
    copy.attempt_number = max(1, failures)
    return copy
