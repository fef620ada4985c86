"""PHP's date(): format characters, and the date strings Twig's date filter accepts."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncapp.twig.errors import TwigRuntimeError

__all__ = ["format_date", "parse_date", "zone"]

_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


def zone(name: str) -> tzinfo:
    """Return a timezone by its IANA name."""
    if name.upper() == "UTC":
        return UTC
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if offset is not None:
        delta = timedelta(hours=int(offset[2]), minutes=int(offset[3]))
        # Named, so that +00:00 stays an offset and is not the UTC zone (PHP tells them apart).
        return timezone(-delta if offset[1] == "-" else delta, f"{offset[1]}{offset[2]}:{offset[3]}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TwigRuntimeError(f'Unknown or bad timezone "{name}".') from exc


def _offset(moment: datetime, *, colon: bool, short: bool = False) -> str:
    seconds = int((moment.utcoffset() or timedelta()).total_seconds())
    if short and seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def _abbreviation(moment: datetime) -> str:
    if moment.tzinfo is UTC:
        return "UTC"
    if isinstance(moment.tzinfo, timezone):
        name = moment.tzname() or ""
        # A fixed offset has no abbreviation: PHP writes "GMT+0200" (but "Z" for a time written with Z).
        return name if name.isalpha() else "GMT" + _offset(moment, colon=False)
    name = moment.tzname() or "UTC"
    return "GMT" + _offset(moment, colon=False) if name[0] in "+-" else name


def _zone_name(moment: datetime) -> str:
    info = moment.tzinfo
    if info is UTC:
        return "UTC"
    key = getattr(info, "key", None)
    if key:
        return key
    name = moment.tzname() or ""
    return name if isinstance(info, timezone) and name.isalpha() else _offset(moment, colon=True)


def format_date(moment: datetime, fmt: str) -> str:
    """Return ``moment`` formatted with PHP's date() format characters (``\\`` escapes the next one)."""
    out: list[str] = []
    index = 0
    while index < len(fmt):
        char = fmt[index]
        index += 1
        if char == "\\":
            if index < len(fmt):
                out.append(fmt[index])
                index += 1
            continue
        out.append(_format_char(moment, char))
    return "".join(out)


def _format_char(moment: datetime, char: str) -> str:  # noqa: C901, PLR0911, PLR0912 - one case per PHP letter
    if char == "d":
        return f"{moment.day:02d}"
    if char == "D":
        return moment.strftime("%a")
    if char == "j":
        return str(moment.day)
    if char == "l":
        return moment.strftime("%A")
    if char == "N":
        return str(moment.isoweekday())
    if char == "S":
        day = moment.day
        return "th" if 10 < day % 100 < 14 else _SUFFIXES.get(day % 10, "th")
    if char == "w":
        return str(moment.isoweekday() % 7)
    if char == "z":
        return str(moment.timetuple().tm_yday - 1)
    if char == "W":
        return f"{moment.isocalendar()[1]:02d}"
    if char == "F":
        return moment.strftime("%B")
    if char == "m":
        return f"{moment.month:02d}"
    if char == "M":
        return moment.strftime("%b")
    if char == "n":
        return str(moment.month)
    if char == "t":
        return str(calendar.monthrange(moment.year, moment.month)[1])
    if char == "L":
        return "1" if calendar.isleap(moment.year) else "0"
    if char == "o":
        return str(moment.isocalendar()[0])
    if char == "Y":
        return str(moment.year)
    if char == "y":
        return f"{moment.year % 100:02d}"
    if char == "a":
        return "am" if moment.hour < 12 else "pm"
    if char == "A":
        return "AM" if moment.hour < 12 else "PM"
    if char == "B":
        utc = moment.astimezone(UTC)
        beats = ((utc.hour * 3600 + utc.minute * 60 + utc.second + 3600) % 86400) * 1000 // 86400
        return f"{beats:03d}"
    if char == "g":
        return str(moment.hour % 12 or 12)
    if char == "G":
        return str(moment.hour)
    if char == "h":
        return f"{moment.hour % 12 or 12:02d}"
    if char == "H":
        return f"{moment.hour:02d}"
    if char == "i":
        return f"{moment.minute:02d}"
    if char == "s":
        return f"{moment.second:02d}"
    if char == "u":
        return f"{moment.microsecond:06d}"
    if char == "v":
        return f"{moment.microsecond // 1000:03d}"
    if char == "e":
        return _zone_name(moment)
    if char == "I":
        dst = moment.dst()
        return "1" if dst else "0"
    if char == "O":
        return _offset(moment, colon=False)
    if char == "P":
        return _offset(moment, colon=True)
    if char == "p":
        return _offset(moment, colon=True, short=True)
    if char == "T":
        return _abbreviation(moment)
    if char == "Z":
        return str(int((moment.utcoffset() or timedelta()).total_seconds()))
    if char == "c":
        return format_date(moment, "Y-m-d\\TH:i:sP")
    if char == "r":
        return format_date(moment, "D, d M Y H:i:s O")
    if char == "U":
        return str(int(moment.timestamp()))
    return char


_ISO = re.compile(
    r"\s*(?P<year>[+-]?\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"(?:(?:[Tt]|\s+)(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?)?"
    r"\s*(?P<zone>[Zz]|UTC|GMT|[+-]\d{2}:?\d{2}|[+-]\d{2}|[A-Za-z]+/[A-Za-z_/+-]+)?\s*"
)
_RELATIVE = re.compile(r"\s*([+-]?\d+)\s*(sec|second|min|minute|hour|day|week|month|year)s?\s*", re.I)


def _zone_of(text: str | None, default: tzinfo) -> tzinfo:
    if not text:
        return default
    if text in ("Z", "z"):
        # PHP keeps the "Z" as the zone's abbreviation and name.
        return timezone(timedelta(0), "Z")
    if text in ("UTC", "GMT"):
        return UTC
    if text[0] in "+-":
        digits = text[1:].replace(":", "").ljust(4, "0")
        return zone(f"{text[0]}{digits[:2]}:{digits[2:4]}")
    return zone(text)


def parse_date(text: str, *, default_zone: tzinfo, now: datetime) -> datetime:
    """Return the moment a PHP date string names: "now", "today", ISO 8601 dates and times, "@epoch",
    and simple relative forms ("+1 day"). Other strings raise TwigRuntimeError, as DateTime does."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("now", ""):
        return now.astimezone(default_zone)
    if lowered in ("today", "midnight"):
        return now.astimezone(default_zone).replace(hour=0, minute=0, second=0, microsecond=0)
    if lowered == "tomorrow":
        return now.astimezone(default_zone).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if lowered == "yesterday":
        return now.astimezone(default_zone).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    if stripped.startswith("@") and re.fullmatch(r"@-?\d+(?:\.\d+)?", stripped):
        return datetime.fromtimestamp(float(stripped[1:]), UTC).replace(tzinfo=timezone(timedelta(0), "+00:00"))
    match = _ISO.fullmatch(stripped)
    if match is not None:
        zone_info = _zone_of(match["zone"], default_zone)
        fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
        try:
            moment = datetime(
                int(match["year"]),
                int(match["month"]),
                int(match["day"]),
                int(match["hour"] or 0),
                int(match["minute"] or 0),
                int(match["second"] or 0),
                int(fraction),
            )
        except ValueError as exc:
            raise TwigRuntimeError(f"Failed to parse time string ({text}).") from exc
        return moment.replace(tzinfo=zone_info)
    relative = _RELATIVE.fullmatch(stripped)
    if relative is not None:
        return _shift(now.astimezone(default_zone), int(relative[1]), relative[2].lower())
    raise TwigRuntimeError(f"Failed to parse time string ({text}).")


def _shift(moment: datetime, amount: int, unit: str) -> datetime:
    if unit in ("month", "year"):
        months = moment.month - 1 + amount * (12 if unit == "year" else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        day = moment.day
        # PHP overflows into the next month: 31 January + 1 month is 3 March.
        extra = max(0, day - calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day - extra) + timedelta(days=extra)
    seconds = {"sec": 1, "second": 1, "min": 60, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}[unit]
    return moment + timedelta(seconds=amount * seconds)
