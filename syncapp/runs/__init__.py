"""The steps of a run, each in its own module:

- `start`: create a run and its first page (or queue it behind the active run);
- `pages`: fetch pages (ahead, when the source allows), plan them in order, record the plans;
- `planner`: the pure decision per object (filtered, invalid, unchanged, create, update);
- `chunks`: write the changed objects in chunks through the target's writer;
- `finish`: delete what vanished, close the run, start follow-ups and the run waiting behind it;
- `resend`: send the work of runs without progress again;
- `recover`: fail lost runs, start the runs waiting behind ended ones, cancel;
- `preview`: a test run, writing nothing.

Readers (syncapp.sources) and writers (syncapp.targets) are picked by type; tasks (workers.tasks)
are sent through workers.dispatch.
"""
from syncapp.errors import ConfigurationError
from syncapp.runs.deferred import runs_send_came_due
from syncapp.runs.preview import run_test
from syncapp.runs.recover import run_cancel, runs_recover
from syncapp.runs.resend import runs_resend_stalled
from syncapp.runs.start import run_start

__all__ = [
    "ConfigurationError", "run_cancel", "run_start", "run_test", "runs_recover", "runs_resend_stalled",
    "runs_send_came_due",
]
