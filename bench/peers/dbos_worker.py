"""DBOS, as one worker of ``bench/peers/run.py`` (run under ``.bench/peers-venv``).

``python bench/peers/dbos_worker.py URL`` (URL: an empty PostgreSQL database, DBOS's system
database; ``DBOS.launch()`` creates its tables). Contender ``dbos``: one ``@DBOS.workflow()``
per run, its id distinct per run (``SetWorkflowID``), called directly (it runs in this thread).

DBOS has no run state: what survives a crash is what each step returned, replayed to the
workflow function when it is recovered. The state of the other contenders maps onto that:

- step 0, ``load_rows()``, returns BIG: DBOS records it once, in the step's row
  (``operation_outputs``, pickled, DBOS's default serializer);
- the workflow keeps BIG in a local variable and passes it along to every later step as an
  argument (DBOS does not record step arguments);
- steps 1..10, ``count(rows, i)``, leave BIG alone and return the counter ``i`` (one small
  recorded output each);
- the workflow returns the last counter (recorded in ``workflow_status`` when it ends).

On recovery DBOS replays step 0's BIG and the counters from their rows: the same state.
A run's measured time starts when ``count`` begins for ``i == 1`` and ends when the workflow
call returns. Samples are seconds per measured step, one per run (``common.serve``).
"""

from __future__ import annotations

import sys
import time
from importlib.metadata import version
from itertools import count as counter
from typing import Any

from common import STEPS, big_value, serve
from dbos import DBOS, SetWorkflowID

started = [0.0]
run_numbers = counter()


@DBOS.step()
def load_rows(size: int) -> list[dict[str, Any]]:
    return big_value(size)


@DBOS.step()
def count(rows: list[dict[str, Any]], i: int) -> int:
    if i == 1:
        started[0] = time.perf_counter()
    return i


@DBOS.workflow()
def peers_run(size: int) -> int:
    rows = load_rows(size)
    last = 0
    for i in range(1, STEPS + 1):
        last = count(rows, i)
    return last


def measure(contender: str, size: int, runs: int) -> list[float]:
    if contender != "dbos":
        raise ValueError(f"this worker runs dbos, not {contender!r}")
    samples = []
    for _ in range(runs):
        with SetWorkflowID(f"dbos-{size}-{next(run_numbers)}"):
            last = peers_run(size)
        samples.append((time.perf_counter() - started[0]) / STEPS)
        if last != STEPS:
            raise AssertionError(f"the workflow returned {last!r}")
    return samples


def main() -> None:
    DBOS(
        config={
            "name": "warlock-bench-peers",
            "system_database_url": sys.argv[1],
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        serve(measure, {"versions": {"dbos": version("dbos"), "SQLAlchemy": version("sqlalchemy")}})
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    main()
