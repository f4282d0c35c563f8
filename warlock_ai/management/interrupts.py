"""SIGINT/SIGTERM in the commands that run runs (``execute_run``, ``resume_run``,
``drain_runs``): the run stops at its next check point, writes its snapshot, releases its
lease; the command prints one line naming the resume command and exits with 128 + the
signal's number (130 for Ctrl-C, 143 for SIGTERM). A step still running
``WARLOCK_AI["SHUTDOWN_GRACE_SECONDS"]`` after the signal (or a second signal) is
interrupted; the lease is released with the last stored snapshot, so that step runs again on
resume."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..conf import warlock_settings
from ..core.errors import RunInterruptedError
from ..core.runs.cancel import CancelToken
from ..core.runs.interrupts import SignalState, signal_exit_code, stop_on_signals


def manage_command(*args: str) -> str:
    """The command line running the management command ``args``, as an operator would type
    it here."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "manage.py"
    prefix = "python manage.py" if program in ("manage.py", "-c", "") else program
    return " ".join([prefix, *map(shlex.quote, args)])


def resume_command(run_id: str) -> str:
    """The command line that resumes ``run_id``, as an operator would type it here."""
    return manage_command("resume_run", run_id)


@dataclass(frozen=True)
class Afterwards:
    """What a command's line says of a run a signal stopped, and how to go on with it."""

    #: The command that resumes the run (None: ``resume_run <run_id>``; "": there is none).
    resume: str | None = None
    #: What became of a run stopped during a step (past the grace period).
    mid_step: str = (
        "stopped during a step; its lease is released and that step runs again on resume"
    )
    #: What became of a run stopped at its next check point.
    at_check_point: str = "stopped at a check point; its snapshot is stored and its lease released"


RUN = Afterwards()


class Interruptible:
    """What a command's run needs to stop cleanly: the cancel token to pass to ``execute``,
    the run's id once known, and the signal, if one came."""

    def __init__(self, token: CancelToken, state: SignalState) -> None:
        self.token, self.state = token, state
        self.run_id: str | None = None
        self.after = RUN

    def starting_handler(self, event: dict[str, Any]) -> None:
        """An ``<kind>.starting`` handler noting the run's id (a generated one too)."""
        self.run_id = event.get("run_id") or self.run_id


@contextmanager
def interruptible(
    command: Any, run_id: str | None = None, after: Afterwards = RUN
) -> Iterator[Interruptible]:
    """Run the body with SIGINT/SIGTERM stopping its run cleanly; a hard interrupt (the
    grace period over, a second signal, Ctrl-C where no handler could be installed) ends the
    command with one line (``after`` says what it tells) and the signal's exit code instead
    of a traceback."""
    token = CancelToken()
    with stop_on_signals(token, float(warlock_settings.SHUTDOWN_GRACE_SECONDS)) as state:
        run = Interruptible(token, state)
        run.run_id, run.after = run_id, after
        try:
            yield run
        except KeyboardInterrupt as exc:
            name = getattr(exc, "signal_name", None) or state.signal_name or "SIGINT"
            why = str(exc) or name
            stop(
                command,
                f"interrupted ({why}): run {run.run_id or '?'} {after.mid_step}",
                run.run_id,
                signal_exit_code(name),
                resume=after.resume,
            )


def stop_if_interrupted(command: Any, result: Any, after: Afterwards = RUN) -> None:
    """End the command when ``result`` is a run that stopped for a signal."""
    error = getattr(result, "error", None)
    if not isinstance(error, RunInterruptedError):
        return
    report = result.report
    if not report.persisted:  # the interrupted write failed: say what is stored instead
        from ..runs import not_durable_line, stored_run

        line = f"interrupted by {error.signal}, and " + not_durable_line(report, stored_run(report))
        stop(command, line, report.run_id, 3, resume=after.resume)
    stop(
        command,
        f"interrupted by {error.signal}: run {report.run_id} {after.at_check_point}",
        report.run_id,
        signal_exit_code(error.signal),
        resume=after.resume,
    )


def stop(
    command: Any,
    line: str,
    run_id: str | None,
    code: int,
    resume: str | None = None,
    **extra: Any,
) -> None:
    """Print the one line (or, with ``--json``, an error document naming the resume command,
    with ``extra`` members) and end the command with ``code``. ``resume`` is the command that
    resumes the run (None: ``resume_run <run_id>``; "": there is none)."""
    from .base import Reported, shown

    if resume is None and run_id is not None:
        resume = resume_command(run_id)
    if resume:
        line += f"; resume it with: {resume}"
    else:
        resume = None
    if getattr(command, "json_output", False):
        error = {"code": "INTERRUPTED", "message": line, "run_id": run_id, "resume": resume}
        command.write_json({"error": error, "exit_code": code, **extra})
    else:
        command.stderr.write(shown(line))
    raise Reported(line, returncode=code)
