"""How far a run has come, as the command line shows it: a bar in neutral colours, a rate measured over
recent progress, the time left when the total is known, and log lines kept above the bar."""
from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from typing import TextIO

# The rate is measured over this many seconds of recent progress: a run that speeds up or slows down
# shows it within that time, and a pause of a second does not make it jump.
RATE_WINDOW_SECONDS = 20.0
BAR_WIDTH = 30


def duration_text(seconds: float | None) -> str:
    """Return a duration as a person reads it: 0.4 s, 12 s, 3 min 05 s, 2 h 01 min."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class RateMeter:
    """Objects done per second over the last RATE_WINDOW_SECONDS, from samples (moment, objects done)."""

    def __init__(self, *, window: float = RATE_WINDOW_SECONDS):
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, *, at: float, done: int) -> None:
        self.samples.append((at, done))
        # Keep one sample at or before the window's start, so the window is always covered whole.
        while len(self.samples) > 2 and self.samples[1][0] <= at - self.window:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Return the objects per second over the window, None until a second of progress is seen."""
        if len(self.samples) < 2:
            return None
        (first_at, first_done), (last_at, last_done) = self.samples[0], self.samples[-1]
        span = last_at - first_at
        return (last_done - first_done) / span if span >= 1.0 else None


def progress_line(
    *, run_id: int, status: str, done: int, found: int, pages: int, rate: float | None, total_known: bool,
    tick: int = 0, width: int = BAR_WIDTH,
) -> str:
    """Return the progress of a run as one line: a bar (`width` 0: none; a moving block while the total is
    unknown), the objects done of found (`found+`: more to come), the pages, the rate, and the time left
    once the total is known."""
    parts = [f"{done:,}/{found:,}{'' if total_known else '+'} objects", f"{pages:,} pages",
             f"{rate:,.1f}/s" if rate is not None else "-/s"]
    if total_known and rate and found > done:
        parts.append(f"ETA {duration_text((found - done) / rate)}")
    if not width:
        return f"run {run_id} {status}: {', '.join(parts)}"
    if total_known:
        filled = min(int(width * done / found), width) if found else width
        bar = "#" * filled + "." * (width - filled)
    else:
        block = min(4, width)
        span = width - block
        position = tick % (2 * span) if span else 0
        position = position if position <= span else 2 * span - position
        bar = "." * position + "=" * block + "." * (span - position)
    return f"run {run_id} {status} [{bar}] {', '.join(parts)}"


class LinesAboveBar:
    """A stream for log handlers while a bar is drawn on a terminal: each log line clears the bar, is
    written, and the bar is drawn again below it."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.bar = ""

    def draw(self, bar: str) -> None:
        self.bar = bar
        self.stream.write(f"\r\033[K{bar}")
        self.stream.flush()

    def write(self, text: str) -> int:
        if self.bar:
            self.stream.write("\r\033[K")
        self.stream.write(text)
        if self.bar and text.endswith("\n"):
            self.stream.write(self.bar)
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line: what is written next starts on a line of its own."""
        if self.bar:
            self.stream.write("\n")
            self.stream.flush()
        self.bar = ""


@contextlib.contextmanager
def logs_above_bar(lines: LinesAboveBar, *, streams: tuple[TextIO, ...]) -> Iterator[None]:
    """Send the log handlers writing to one of `streams` through `lines` while the bar is shown."""
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    swapped = []
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in streams:
                swapped.append((handler, handler.setStream(lines)))
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)
