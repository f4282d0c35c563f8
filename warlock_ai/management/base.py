"""What every warlock_ai command shares: one clear error line and exit code 1 on bad input,
``--json`` (one JSON document on stdout, errors included), the exit codes of a run's outcome,
numbers and durations checked with one-line errors, run ids never echoed raw to a terminal,
and Django's ``--no-input`` convention for the commands that ask before deleting."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, redirect_stdout
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ..core.errors import AIError
from ..core.runs.kinds import kind_named
from ..core.runs.snapshots import error_dict
from ..core.runs.usage import Usage
from ..runs import not_durable_line, stored_run

#: Exit codes of the commands that run or resume runs (documented in docs/django.md).
EXIT_OK = 0  # the run completed and every snapshot write was stored
EXIT_FAILED = 1  # bad input or refused; or the run ended failed, cancelled, max-iterations
EXIT_NOT_DURABLE = 3  # the run ended, but a snapshot write failed: the stored run is behind

EXIT_CODES_HELP = (
    "Exit codes: 0 the run completed and every snapshot write was stored; 1 bad input or "
    "refused, or the run ended failed, cancelled or max-iterations; 3 the run ended but a "
    "snapshot write failed, so the stored run is behind (one line says what it now says); "
    "130 (SIGINT) or 143 (SIGTERM) the run was interrupted and stays resumable (one line "
    "names the resume command)."
)

#: The ``code`` of a refusal that is not an ``AIError`` (bad options, argparse's errors).
INVALID_INPUT = "INVALID_INPUT"
#: The most any duration option accepts (100 years): more is a typo, and overflows dates.
MAX_DURATION = timedelta(days=36500)


class Reported(CommandError):
    """The outcome was printed already (text or JSON); only the exit code is left to give."""


def shown(text: Any) -> str:
    """``text`` safe to print on a terminal: control and other unprintable characters
    (newline, ESC, DEL, C1, bidi controls...) escaped as ``repr`` does, the rest as is."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class RunCommand(BaseCommand):
    """A command whose expected failures print ``error: <one line>`` and exit with 1."""

    # Where ``confirm`` reads the answer (``call_command(..., stdin=...)``, as Django's
    # createsuperuser allows); sys.stdin otherwise.
    stealth_options = ("stdin",)

    def execute(self, *args: Any, **options: Any) -> Any:
        self.verbosity = options.get("verbosity", 1)
        self.interactive = options.get("interactive", True) and not options.get("yes", False)
        self.stdin = options.get("stdin") or sys.stdin
        self.json_output = bool(options.get("json", False))
        from_command_line = getattr(self, "_called_from_command_line", False)
        try:
            return super().execute(*args, **options)
        except Reported as exc:
            if options.get("traceback") or not from_command_line:
                raise
            sys.exit(exc.returncode)
        except (CommandError, AIError) as exc:
            message = exc.message if isinstance(exc, AIError) else str(exc)
            if options.get("traceback") or not from_command_line:
                if isinstance(exc, CommandError):
                    raise
                raise CommandError(message) from exc
            if self.json_output:
                code = exc.code if isinstance(exc, AIError) else INVALID_INPUT
                self.write_json({"error": {"code": code, "message": message}})
            else:
                self.stderr.write(f"error: {shown(message)}")
            sys.exit(exc.returncode if isinstance(exc, CommandError) else EXIT_FAILED)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        """argparse's own errors (a missing option, ``--limit abc``) follow the same rule:
        one ``error: ...`` line and exit code 1, not a usage block and exit code 2."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str) -> None:
            if not parser.called_from_command_line:
                raise CommandError(f"Error: {message}")
            message = shown(f"{message} (see {prog_name} {subcommand} --help)")
            if "--json" in sys.argv[2:]:  # the options are not parsed yet: look for it
                error = {"error": {"code": INVALID_INPUT, "message": message}}
                sys.stdout.write(json.dumps(error, indent=2) + "\n")
            else:
                sys.stderr.write(f"error: {message}\n")
            sys.exit(1)

        # Replaces the method on this one parser; mypy refuses assigning to a method.
        setattr(parser, "error", error)  # noqa: B010
        return parser

    @staticmethod
    def add_json_argument(parser: Any, what: str) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help=f"print {what} as one JSON document on stdout (an error as "
            '{"error": {"code", "message"}}, with the same exit code); progress lines go to '
            "stderr",
        )

    @staticmethod
    def add_no_input_arguments(parser: Any) -> None:
        """Django's ``--noinput``/``--no-input`` (dest ``interactive``, so ``call_command(...,
        interactive=False)`` works as for Django's own commands), and ``--yes`` as an alias."""
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="do not ask for confirmation (needed in scripts, cron jobs and CI, where "
            "stdin is not a terminal)",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="the same as --no-input (kept as an alias for older scripts)",
        )

    def confirm(self, question: str) -> None:
        """Ask ``question`` (a yes/no question) on the terminal and return when the answer is
        yes; raise ``CommandError`` otherwise. Asks nothing with ``--no-input``/``--yes``
        (``interactive=False``), and refuses when stdin is not a terminal, since nobody could
        answer. The question goes to stderr, so ``--json`` output on stdout stays clean."""
        if not self.interactive:
            return
        isatty = getattr(self.stdin, "isatty", None)
        if isatty is None or not isatty():
            raise CommandError(
                f'cannot ask "{question}": stdin is not a terminal; pass --no-input to '
                "go ahead without asking"
            )
        self.stderr.write(f"{question} [y/N] ", style_func=_plain, ending="")
        self.stderr.flush()
        try:
            answer = self.stdin.readline()
        except KeyboardInterrupt:
            answer = ""
        if not answer.endswith("\n"):  # end of input (Ctrl-D) or Ctrl-C: end the prompt line
            self.stderr.write("")
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError("not confirmed: nothing deleted")

    @staticmethod
    def parse_json(option: str, text: str | None, *, want_object: bool = False) -> Any:
        if text is None:
            return None
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{option} is not valid JSON: {exc}") from None
        except ValueError as exc:  # NaN or Infinity: Python reads them, JSON has no such thing
            raise CommandError(f"{option} is not valid JSON: {exc}") from None
        if want_object and not isinstance(value, dict):
            raise CommandError(f"{option} must be a JSON object, got {type(value).__name__}")
        return value

    def read_json_source(self, option: str, text: str | None, path: str | None) -> Any:
        """The JSON of ``option`` (``--input``): ``--input JSON``, ``--input -`` or
        ``--input-file -`` from stdin, or ``--input-file PATH`` (None when neither is given);
        an unreadable source is one line naming it."""
        if text == "-" or path == "-":
            try:
                content = self.stdin.read()
            except UnicodeDecodeError as exc:
                raise CommandError(f"{option} from stdin is not UTF-8 text: {exc}") from None
            return self.parse_json(f"{option} from stdin", content)
        if path is None:
            return self.parse_json(option, text)
        where = f"{option}-file {shown(path)}"
        try:
            with open(path, encoding="utf-8") as fh:
                content = fh.read()
        except FileNotFoundError:
            raise CommandError(f"{where}: no such file") from None
        except IsADirectoryError:
            raise CommandError(f"{where} is a directory, not a file") from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{where} is not UTF-8 text: {exc}") from None
        except OSError as exc:
            raise CommandError(f"{where} cannot be read: {exc.strerror or exc}") from None
        return self.parse_json(where, content)

    @staticmethod
    def add_json_source_arguments(parser: Any, option: str, what: str, required: bool) -> None:
        """``--<option> JSON`` (``-`` for stdin) and ``--<option>-file PATH``, exclusive."""
        source = parser.add_mutually_exclusive_group(required=required)
        source.add_argument(
            f"--{option}", default=None, help=f"{what} as JSON; - reads it from stdin"
        )
        source.add_argument(
            f"--{option}-file",
            default=None,
            metavar="PATH",
            help=f"read {what} (JSON, UTF-8) from the file PATH (- for stdin); for values too "
            "big for the command line",
        )

    def progress_handlers(self, kind: str = "workflow") -> dict[str, Any]:
        """Per-call event handlers printing each step or iteration as it starts and settles
        (with ``--json`` on stderr, so stdout keeps one JSON document); none with ``-v 0``."""
        if self.verbosity < 1:
            return {}
        return {
            event: partial(self._progress_line, line)
            for event, line in kind_named(kind).progress_lines.items()
        }

    def _progress_line(self, line: Callable[[dict[str, Any]], str], event: dict[str, Any]) -> None:
        self.progress_out.write(shown(line(event)))

    def run_output(self) -> AbstractContextManager[Any]:
        """Around running a run: with ``--json``, what its steps ``print`` goes to stderr, so
        stdout carries only the one JSON document (the command's own stdout is kept)."""
        if getattr(self, "json_output", False):
            return redirect_stdout(sys.stderr)
        return nullcontext()

    @property
    def progress_out(self) -> Any:
        """Where lines about a run in progress go: stdout, or stderr with ``--json``."""
        return self.stderr if getattr(self, "json_output", False) else self.stdout

    def report(
        self, result: Any, headline: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        """Print a run's outcome (a line, or with ``--json`` the result document, with
        ``extra`` members) and end with its exit code: 0 completed and durable, 1 the run did
        not complete, 3 a snapshot write failed (one line says what the stored run now says).
        ``headline`` names the run in its line (default ``run <run_id>``)."""
        report = result.report
        code = exit_code(result)
        stored = None if report.persisted else stored_run(report)
        if self.json_output:
            self.write_json({**result_json(result, code, stored), **(extra or {})})
        else:
            what = headline or f"run {report.run_id}"
            line = f"{shown(what)}: {report.status} in {report.duration_ms / 1000:.2f} s"
            ok = code == EXIT_OK
            self.stdout.write(self.style.SUCCESS(line) if ok else line)
            if result.error is not None:
                self.stderr.write(f"error: {shown(result.error.message)}")
            if stored is not None:
                self.stderr.write(f"error: {shown(not_durable_line(report, stored))}")
        if code != EXIT_OK:
            message = result.error.message if result.error is not None else ""
            if stored is not None:
                message = not_durable_line(report, stored)
            raise Reported(message, returncode=code)

    def report_enqueued(self, job: Any) -> None:
        """The job a run went to: one line, or with ``--json`` its run id, job id, queue."""
        if self.json_output:
            self.write_json(enqueued_json(job))
        else:
            self.stdout.write(enqueued_line(job))

    # --- helpers for the operator commands -----------------------------------------------

    @staticmethod
    def parse_choices(option: str, text: str, valid: Any) -> list[str]:
        """A comma-separated ``text`` whose every item is one of ``valid``."""
        values = [item.strip() for item in text.split(",") if item.strip()]
        if not values:
            raise CommandError(f"{option} needs at least one value: {', '.join(valid)}")
        unknown = [value for value in values if value not in valid]
        if unknown:
            raise CommandError(
                f"{option}: unknown value {unknown[0]!r}; valid values: {', '.join(valid)}"
            )
        return list(dict.fromkeys(values))

    def write_json(self, value: Any) -> None:
        """``value`` as indented JSON on stdout (datetimes as ISO 8601)."""
        self.stdout.write(json.dumps(value, indent=2, default=_json_default), style_func=_plain)

    def write_table(self, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """``rows`` under ``header`` in aligned columns; a stored id or name in a cell is
        never printed raw (``shown``: no escape sequences reach the terminal)."""
        table = [header] + [tuple(shown(cell) for cell in row) for row in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        for line in table:
            cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())

    def progress_bar(self, label: str) -> ProgressBar | None:
        """A ``progress(done, total)`` callback drawing on stderr, or ``None`` when stderr is
        not a terminal or verbosity is 0 (so scripts and logs never see it)."""
        if self.verbosity < 1 or not self.stderr.isatty():
            return None
        return ProgressBar(self.stderr, label)


# --- a run's outcome: exit code, JSON document, what the store kept -----------------------


def exit_code(result: Any) -> int:
    """``EXIT_NOT_DURABLE`` when a snapshot write failed (whatever the status: the stored run
    is behind), else ``EXIT_FAILED`` when the run did not end cleanly (completed; a turn
    awaiting input), else ``EXIT_OK``."""
    report = result.report
    if not getattr(report, "persisted", True):
        return EXIT_NOT_DURABLE
    if result.error is not None or report.status != kind_named(report.type).settled_status:
        return EXIT_FAILED
    return EXIT_OK


def result_json(result: Any, code: int, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's result as the commands' ``--json`` prints it."""
    report = result.report
    kind = kind_named(report.type)
    document: dict[str, Any] = {
        "run_id": report.run_id,
        "kind": kind.name,
        "name": report.name,
        "version": report.version,
        "signature": report.signature,
        "status": report.status,
        "exit_code": code,
        "error": _error_json(result.error),
        "duration_ms": round(report.duration_ms, 3),
        "usage": report.usage.to_dict(),
        "data": result.data,
        "persisted": report.persisted,
        "failed_writes": report.failed_writes,
        "persist_error": _error_json(report.persist_error),
        kind.units: kind.report_summary(report),
    }
    if stored is not None:
        document["stored"] = stored
    return document


def _error_json(error: AIError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"code": error.code, "message": error.message, **(error_dict(error) or {})}


# --- numbers and durations -----------------------------------------------------------------


def int_option(option: str, low: int, high: int, zero: str | None = None) -> Any:
    """An argparse ``type`` for an integer from ``low`` to ``high``; anything else is one
    error line naming the option and the range (``zero`` says what 0 means, for the help)."""

    def parse(text: str) -> int:
        words = f" (0 {zero})" if zero else ""
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expects a whole number from {low}{words} to {high}, got {shown(repr(text))}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be from {low}{words} to {high}, got {shown(text.strip())}"
            )
        return value

    parse.__name__ = option  # argparse names the type in its own message
    return parse


_DURATION = re.compile(r"(\d+)\s*([dhms])")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(option: str, text: str, maximum: timedelta = MAX_DURATION) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` (or a sum such as ``1d12h``) as a ``timedelta``;
    anything longer than ``maximum`` is refused (a huge number is a typo, and overflows)."""
    compact = text.strip().lower()
    if compact.startswith("-"):
        raise CommandError(f"{option} must not be negative, got {shown(repr(text))}")
    parts = _DURATION.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact.replace(" ", ""):
        raise CommandError(
            f"{option} expects a duration such as 30d, 12h, 90m or 45s, got {shown(repr(text))}"
        )
    # Summed as an int first: timedelta() of a huge number raises OverflowError.
    seconds = sum(int(number) * _SECONDS[unit] for number, unit in parts)
    if seconds > maximum.total_seconds():
        raise CommandError(
            f"{option} {shown(text.strip())} is too long: the most is {maximum.days}d"
        )
    return timedelta(seconds=seconds)


def _plain(text: str) -> str:
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (a snapshot cannot store it)")


def _json_default(value: Any) -> Any:
    """Datetimes as ISO 8601, usage and errors as their dicts, anything else as its repr
    (``data`` of a run may hold what JSON cannot: the document stays one JSON document)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Usage):
        return value.to_dict()
    if isinstance(value, AIError):
        return _error_json(value)
    return repr(value)


class ProgressBar:
    """``bar(done, total)`` redraws one line on a terminal; ``bar.close()`` ends it."""

    WIDTH = 30

    def __init__(self, out: Any, label: str) -> None:
        self.out = out
        self.label = label
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.out.write(f"\r{self.label} [{bar}] {done}/{total}", ending="")
        self.out.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.out.write("")
            self.drawn = False


def add_enqueue_arguments(
    parser: Any, what: str, prints: str = "the job id and the run id"
) -> None:
    parser.add_argument(
        "--enqueue",
        action="store_true",
        help=f"{what} on a background worker (django-rq or Django's tasks framework, as "
        f"WARLOCK_AI['BACKGROUND'] says) instead of here; prints {prints}",
    )
    parser.add_argument(
        "--queue",
        default=None,
        help="with --enqueue: the queue (default WARLOCK_AI['RQ_QUEUE'], or TASKS_QUEUE)",
    )


def check_enqueue_options(options: dict[str, Any]) -> None:
    """Refuse option combinations ``--enqueue`` cannot honour, and an unknown queue."""
    if not options["enqueue"]:
        if options["queue"] is not None:
            raise CommandError("--queue only applies with --enqueue")
        return
    if options.get("context") is not None:
        raise CommandError("--context cannot be sent with --enqueue (jobs take no context)")
    from django.core.exceptions import ImproperlyConfigured

    from .. import background

    try:
        chosen = background.kind()
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
    if chosen == background.TASKS:
        problem = background.tasks_problem(options["queue"])
        if problem is not None:
            raise CommandError(f"--enqueue: {problem}")
        return
    _check_rq_queue(options["queue"])


def _check_rq_queue(queue: str | None) -> None:
    from django.conf import settings

    from ..conf import warlock_settings

    try:
        import django_rq  # noqa: F401
    except ImportError:
        raise CommandError(
            "--enqueue needs django-rq: pip install 'warlock-ai[rq]', add 'django_rq' to "
            "INSTALLED_APPS and configure RQ_QUEUES (or set WARLOCK_AI['BACKGROUND'] to "
            "'tasks' for Django's tasks framework)"
        ) from None
    queues = getattr(settings, "RQ_QUEUES", None) or {}
    name = queue or warlock_settings.RQ_QUEUE
    if name not in queues:
        known = ", ".join(sorted(queues)) or "none"
        raise CommandError(f"unknown rq queue {name!r}; settings.RQ_QUEUES defines: {known}")


def enqueued_line(job: Any) -> str:
    document = enqueued_json(job)
    if "run_id" in document:
        what = f"run {document['run_id']}"
    else:
        what = f"turn of session {document['session_id']} of {document['orchestrator']}"
    return shown(
        f"{what}: job {document['job_id']} {document['job_status']} on {document['queue']}"
    )


def enqueued_json(job: Any) -> dict[str, Any]:
    """The job a run (``run_id``) or a turn (``orchestrator``, ``session_id``, ``turn_key``)
    went to."""
    from ..background import describe

    return describe(job)


def enqueue(function: Any, *args: Any) -> Any:
    """Call a ``warlock_ai.background`` enqueue function; an unreachable Redis is one error
    line."""
    from django.db import DatabaseError

    redis_errors: tuple[type[BaseException], ...] = ()
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        redis_errors = (RedisConnectionError, RedisTimeoutError)
    except ImportError:  # no redis: the tasks framework
        pass
    try:
        return function(*args)
    except redis_errors as exc:
        raise CommandError(f"cannot reach the rq queue's Redis: {exc}") from None
    except DatabaseError as exc:  # the tasks framework's delivery could not be written
        raise CommandError(f"could not enqueue: {type(exc).__name__}: {exc}") from None
