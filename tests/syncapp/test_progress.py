"""The command line's progress of a run: a rate over recent progress, the time left once the total is known."""
from __future__ import annotations

import io
import logging

from syncapp.progress import LinesAboveBar, RateMeter, duration_text, logs_above_bar, progress_line


def line(**figures) -> str:
    return progress_line(**{"run_id": 7, "status": "running", "pages": 3, "width": 10, **figures})


def test_the_rate_is_measured_over_recent_progress_not_since_the_start():
    # Given a run that did 100 objects in its first 100 s, then 50 a second for 20 s
    meter = RateMeter(window=20)
    meter.add(at=0, done=0)
    meter.add(at=100, done=100)
    for second in range(1, 21):
        meter.add(at=100 + second, done=100 + 50 * second)

    # Then its rate is the recent one, not the average since its start
    assert meter.rate() == 50.0


def test_no_rate_before_a_second_of_progress_is_seen():
    meter = RateMeter()
    meter.add(at=10.0, done=5)
    assert meter.rate() is None
    meter.add(at=10.5, done=9)
    assert meter.rate() is None


def test_a_known_total_shows_a_bar_of_done_and_the_time_left_at_the_recent_rate():
    shown = line(done=250, found=1000, rate=12.5, total_known=True)

    assert shown == "run 7 running [##........] 250/1,000 objects, 3 pages, 12.5/s, ETA 1 min 00 s"


def test_an_unknown_total_shows_a_moving_block_and_no_time_left():
    first, later = (line(done=40, found=60, rate=4.0, total_known=False, tick=tick) for tick in (0, 3))

    assert first == "run 7 running [====......] 40/60+ objects, 3 pages, 4.0/s"
    assert later == "run 7 running [...====...] 40/60+ objects, 3 pages, 4.0/s"
    assert "ETA" not in first


def test_without_a_rate_yet_there_is_no_time_left_and_a_plain_line_has_no_bar():
    assert line(done=0, found=100, rate=None, total_known=True, width=0) == "run 7 running: 0/100 objects, 3 pages, -/s"


def test_durations_read_as_a_person_says_them():
    assert [duration_text(seconds) for seconds in (0.42, 12.2, 185, 7260)] == ["0.4 s", "12 s", "3 min 05 s",
                                                                               "2 h 01 min"]


def test_log_lines_are_written_above_the_bar_which_is_drawn_again_below_them():
    # Given a bar drawn on a terminal, and a logger writing to the same stream
    terminal = io.StringIO()
    handler = logging.StreamHandler(terminal)
    logger = logging.getLogger("tests.progress")
    logger.addHandler(handler)
    logger.propagate = False
    bar = LinesAboveBar(terminal)
    try:
        with logs_above_bar(bar, streams=(terminal,)):
            bar.draw("run 7 running [#.] 1/2 objects")
            # When a line is logged
            logger.warning("page 2 answered slowly")
        bar.finish()
    finally:
        logger.removeHandler(handler)

    # Then the bar's line is cleared, the log line written, and the bar drawn again below it
    assert terminal.getvalue() == (
        "\r\033[Krun 7 running [#.] 1/2 objects" "\r\033[Kpage 2 answered slowly\n" "run 7 running [#.] 1/2 objects\n"
    )
    assert handler.stream is terminal  # given back when the bar is gone
