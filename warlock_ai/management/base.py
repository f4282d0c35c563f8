"""What every warlock_ai command shares: one clear error line and exit code 1 on bad input,
and Django's ``--no-input`` convention for the commands that ask before deleting."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ..core.errors import AIError
from ..core.runs.kinds import kind_named


class RunCommand(BaseCommand):
    """A command whose expected failures print ``error: <one line>`` and exit with 1."""

    # Where ``confirm`` reads the answer (``call_command(..., stdin=...)``, as Django's
    # createsuperuser allows); sys.stdin otherwise.
    stealth_options = ("stdin",)

    def execute(self, *args: Any, **options: Any) -> Any:
        self.verbosity = options.get("verbosity", 1)
        self.interactive = options.get("interactive", True) and not options.get("yes", False)
        self.stdin = options.get("stdin") or sys.stdin
        try:
            return super().execute(*args, **options)
        except (CommandError, AIError) as exc:
            message = exc.message if isinstance(exc, AIError) else str(exc)
            if options.get("traceback") or not getattr(self, "_called_from_command_line", False):
                if isinstance(exc, CommandError):
                    raise
                raise CommandError(message) from exc
            self.stderr.write(f"error: {message}")
            sys.exit(1)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        """argparse's own errors (a missing option, ``--limit abc``) follow the same rule:
        one ``error: ...`` line and exit code 1, not a usage block and exit code 2."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str) -> None:
            if not parser.called_from_command_line:
                raise CommandError(f"Error: {message}")
            sys.stderr.write(f"error: {message} (see {prog_name} {subcommand} --help)\n")
            sys.exit(1)

        # Replaces the method on this one parser; mypy refuses assigning to a method.
        setattr(parser, "error", error)  # noqa: B010
        return parser

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

    def progress_handlers(self, kind: str = "workflow") -> dict[str, Any]:
        """Per-call event handlers printing each step or iteration as it settles."""
        if self.verbosity < 1:
            return {}
        return {
            event: partial(self._progress_line, line)
            for event, line in kind_named(kind).progress_lines.items()
        }

    def _progress_line(self, line: Callable[[dict[str, Any]], str], event: dict[str, Any]) -> None:
        self.stdout.write(line(event))

    def report(self, result: Any) -> None:
        """Print the outcome; a run that did not complete exits with 1."""
        report = result.report
        line = f"run {report.run_id}: {report.status} in {report.duration_ms / 1000:.2f} s"
        if result.error is not None:
            self.stdout.write(line)
            self.stderr.write(f"error: {result.error.message}")
            if getattr(self, "_called_from_command_line", False):
                sys.exit(1)
            raise CommandError(result.error.message)
        self.stdout.write(self.style.SUCCESS(line) if report.status == "completed" else line)

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
        self.stdout.write(json.dumps(value, indent=2, default=_json_default))

    def progress_bar(self, label: str) -> ProgressBar | None:
        """A ``progress(done, total)`` callback drawing on stderr, or ``None`` when stderr is
        not a terminal or verbosity is 0 (so scripts and logs never see it)."""
        if self.verbosity < 1 or not self.stderr.isatty():
            return None
        return ProgressBar(self.stderr, label)


_DURATION = re.compile(r"(\d+)\s*([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(option: str, text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` (or a sum such as ``1d12h``) as a ``timedelta``."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact.replace(" ", ""):
        raise CommandError(
            f"{option} expects a duration such as 30d, 12h, 90m or 45s, got {text!r}"
        )
    delta = timedelta()
    for number, unit in parts:
        delta += timedelta(**{_UNITS[unit]: int(number)})
    return delta


def _plain(text: str) -> str:
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (a snapshot cannot store it)")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


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


def add_enqueue_arguments(parser: Any, what: str) -> None:
    parser.add_argument(
        "--enqueue",
        action="store_true",
        help=f"{what} on a django-rq worker instead of here; prints the job id and the run id",
    )
    parser.add_argument(
        "--queue",
        default=None,
        help="with --enqueue: the django-rq queue (default WARLOCK_AI['RQ_QUEUE'])",
    )


def check_enqueue_options(options: dict[str, Any]) -> None:
    """Refuse option combinations ``--enqueue`` cannot honour, and an unknown queue."""
    if not options["enqueue"]:
        if options["queue"] is not None:
            raise CommandError("--queue only applies with --enqueue")
        return
    if options.get("context") is not None:
        raise CommandError("--context cannot be sent with --enqueue (jobs take no context)")
    from django.conf import settings

    from ..conf import warlock_settings

    try:
        import django_rq  # noqa: F401
    except ImportError:
        raise CommandError(
            "--enqueue needs django-rq: pip install 'warlock-ai[rq]', add 'django_rq' to "
            "INSTALLED_APPS and configure RQ_QUEUES"
        ) from None
    queues = getattr(settings, "RQ_QUEUES", None) or {}
    name = options["queue"] or warlock_settings.RQ_QUEUE
    if name not in queues:
        known = ", ".join(sorted(queues)) or "none"
        raise CommandError(f"unknown rq queue {name!r}; settings.RQ_QUEUES defines: {known}")


def enqueued_line(job: Any) -> str:
    status = job.get_status(refresh=False)
    return (
        f"run {job.meta['run_id']}: job {job.id} {getattr(status, 'value', status)} on {job.origin}"
    )


def enqueue(function: Any, *args: Any) -> Any:
    """Call a ``warlock_ai.jobs`` enqueue function; an unreachable Redis is one error line."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    try:
        return function(*args)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise CommandError(f"cannot reach the rq queue's Redis: {exc}") from None
