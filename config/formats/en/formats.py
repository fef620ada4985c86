"""Times as the run page, the next run and the scheduler's last tick show them: 2026-12-06 21:50:00 UTC,
wherever the admin shows a stored date and time (a readonly field, a list column). Other formats stay English."""
DATETIME_FORMAT = "Y-m-d H:i:s T"
