"""The crash-and-resume demo behind ``make demo``.

Run it from the repository root::

    .venv/bin/python -m example_project.demo          # add --keep to keep the database

It plays a short story with the ``catalog-import`` workflow of ``example_project/catalog``,
typing ``manage.py`` commands exactly as you would, on a fresh SQLite database in a temporary
directory: a run is killed in the middle of a step and resumed; then the workflow changes while
three runs are unfinished, and each of the three ways out is shown (discard, force, migrate).

It checks everything it claims (exit codes, statuses, how many times each step ran) and exits
with status 1 if anything is off, so it doubles as an end-to-end test.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FLOW = "catalog-import"
INPUT = '{"vendor_id": "acme"}'
PRODUCTS = 11  # 12 feed rows, one duplicate SKU
CRASH_AFTER = 4  # progress lines of the enrich step before the kill
WRITE_DELAY = "0.4"  # seconds per description, so the crash lands in the middle of enrich
TIMEOUT = 60  # seconds any one command may take

# The code an operator types to discard, and to migrate, a run (run in `manage.py shell -c`).
DISCARD_CODE = """\
from warlock_ai.stores.handler import get_snapshot_store
get_snapshot_store().delete("{run_id}")
print("deleted the snapshot of {run_id}")"""

MIGRATE_CODE = """\
import dataclasses
from warlock_ai.registry import registry
from warlock_ai.stores.handler import get_snapshot_store
wf = registry.get("workflow", "catalog-import")  # the definition deployed now (version 2)
store = get_snapshot_store()
snap = store.load("{run_id}")
steps = dict(snap.steps)
if "upsert" in steps:  # version 2 calls this step save_products
    steps["save_products"] = steps.pop("upsert")
next_step = "save_products" if snap.next == "upsert" else snap.next
store.save(dataclasses.replace(
    snap, steps=steps, next=next_step, signature=wf.signature, version=wf.version))
print(f"migrated {{snap.run_id}}: signature {{snap.signature}} -> {{wf.signature}}, "
      f"next step: {{next_step}}")"""


class DemoFailure(Exception):
    """Something the demo claims did not happen."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailure(message)


@dataclass
class Outcome:
    code: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


def say(text: str = "") -> None:
    """Narration, wrapped and indented under the phase title."""
    if not text:
        print()
        return
    print(textwrap.fill(text, width=92, initial_indent="   ", subsequent_indent="   "))


def phase(number: int, title: str) -> None:
    print()
    print(f"{number}. {title}")
    print("   " + "-" * (len(title) + 3))


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.db = workdir / "db.sqlite3"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        self.env.pop("CATALOG_IMPORT_VERSION", None)
        self.env.pop("WARLOCK_DEMO_DB", None)
        self.env.update(
            {
                "WARLOCK_DB_URL": f"sqlite:///{self.db}",
                "DJANGO_SETTINGS_MODULE": "example_project.settings",
                "PYTHONUNBUFFERED": "1",
                "WARLOCK_DEMO_WRITE_DELAY": WRITE_DELAY,
            }
        )

    # --- running manage.py, as a user would ----------------------------------------------

    def show(self, args: list[str]) -> None:
        command = shlex.join(["python", "manage.py", *args])
        lines = command.splitlines()
        print(f"   $ {lines[0]}")
        for line in lines[1:]:
            print(f"     {line}")

    def start(self, args: list[str]) -> subprocess.Popen[str]:
        self.show(args)
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def manage(self, *args: str, fold: bool = False, echo: bool = True) -> Outcome:
        """Run one command to the end, streaming its output (indented)."""
        proc = self.start(list(args))
        outcome = Outcome(code=-1)
        watchdog = threading.Timer(TIMEOUT, proc.kill)
        watchdog.start()
        drain = threading.Thread(target=self._drain_stderr, args=(proc, outcome, echo))
        drain.start()
        folded: list[str] = []
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                outcome.stdout.append(line)
                if not echo:
                    continue
                if fold and line.startswith("enrich:"):
                    folded.append(line)
                    if len(folded) == 1:
                        print(f"     {line}")
                    continue
                self._flush_fold(folded)
                print(f"     {line}")
            self._flush_fold(folded)
            outcome.code = proc.wait()
            drain.join()
        finally:
            watchdog.cancel()
            if proc.poll() is None:  # interrupted (Ctrl-C): do not leave the child running
                proc.kill()
                proc.wait()
        expect(outcome.code >= 0, f"`manage.py {args[0]}` took more than {TIMEOUT} s")
        return outcome

    @staticmethod
    def _flush_fold(folded: list[str]) -> None:
        if len(folded) > 1:
            if len(folded) > 2:
                print(f"     ... ({len(folded) - 2} more progress lines)")
            print(f"     {folded[-1]}")
        folded.clear()

    @staticmethod
    def _drain_stderr(proc: subprocess.Popen[str], outcome: Outcome, echo: bool) -> None:
        for raw in proc.stderr:
            line = raw.rstrip("\n")
            outcome.stderr.append(line)
            if echo:
                print(f"     {line}")

    def crash_mid_enrich(self, run_id: str) -> None:
        """Start an import and SIGKILL it after CRASH_AFTER enrich progress lines."""
        proc = self.start(
            ["execute_run", FLOW, "--input", INPUT, "--run-id", run_id],
        )
        watchdog = threading.Timer(TIMEOUT, proc.kill)
        watchdog.start()
        seen, killed, lines = 0, False, []
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                print(f"     {line}")
                if line.startswith("enrich:"):
                    seen += 1
                    if seen == CRASH_AFTER:
                        os.kill(proc.pid, signal.SIGKILL)
                        killed = True
                        print(
                            f"   simulating a crash: SIGKILL to pid {proc.pid}, "
                            "like an OOM kill or a spot reclaim"
                        )
                        break
            proc.wait()
            errors = proc.stderr.read()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        if errors.strip():
            print(textwrap.indent(errors.rstrip(), "     "))
        expect(killed, f"{run_id}: the run ended before it printed {CRASH_AFTER} enrich lines")
        expect(proc.returncode == -signal.SIGKILL, f"{run_id}: exit {proc.returncode}")

    def shell(self, code: str) -> Outcome:
        outcome = self.manage("shell", "--no-imports", "-c", code)
        expect(outcome.code == 0, f"manage.py shell failed (exit {outcome.code})")
        return outcome

    # --- looking at the database from here ------------------------------------------------

    @staticmethod
    def snapshot(run_id: str):
        from warlock_ai.models import Snapshot

        return Snapshot.objects.get(run_id=run_id)

    @staticmethod
    def executions(run_id: str) -> Counter[str]:
        from example_project.catalog.models import StepExecution

        rows = StepExecution.objects.filter(run_id=run_id).values_list("step", flat=True)
        return Counter(rows)

    def show_snapshot(self, run_id: str) -> None:
        row = self.snapshot(run_id)
        snap = row.to_snapshot()
        products = row.state.get("products", [])
        written = sum(1 for p in products if p.get("description"))
        print(f"     run id:          {row.run_id}")
        print(f"     status:          {row.status}")
        print(f"     next step:       {row.next_step}")
        print(f"     completed steps: {', '.join(snap.completed_steps) or '(none)'}")
        print(f"     saved at:        {row.saved_at:%Y-%m-%d %H:%M:%S} UTC")
        print(f"     state:           {len(products)} products, {written} with a description")

    def show_executions(self, run_id: str, steps: tuple[str, ...]) -> Counter[str]:
        counts = self.executions(run_id)
        cells = [f"{step} x{counts.get(step, 0)}" for step in steps]
        print(f"     step bodies run for {run_id}: " + ", ".join(cells))
        return counts

    def check_executions(self, run_id: str, expected: dict[str, int]) -> None:
        counts = self.show_executions(run_id, tuple(expected))
        got = {step: counts.get(step, 0) for step in expected}
        expect(got == expected, f"{run_id}: steps ran {got}, expected {expected}")
        extra = set(counts) - set(expected)
        expect(not extra, f"{run_id}: unexpected steps ran: {sorted(extra)}")

    def check_status(self, run_id: str, status: str) -> None:
        row = self.snapshot(run_id)
        expect(row.status == status, f"{run_id}: status {row.status!r}, expected {status!r}")


def run(demo: Demo) -> None:
    from example_project.catalog.models import Product
    from warlock_ai.models import Snapshot

    steps = ("fetch", "normalize", "enrich", "upsert", "save_products")

    print("warlock_ai demo: a catalog import that survives a crash")
    print("=======================================================")
    say(
        "The catalog-import workflow (example_project/catalog/flows.py) has four steps: fetch "
        "a vendor feed, normalize it, enrich each product with a written description, and "
        "upsert the products into the database. warlock_ai saves a snapshot of the run after "
        "every step, so a run that dies can continue where it stopped."
    )
    say(
        f"Descriptions come from an offline stand-in for a language model that takes {WRITE_DELAY} "
        "s per product. (With OPENAI_BASE_URL and OPENAI_API_KEY set, manage.py execute_run would "
        "use a real one; the demo always uses the stand-in.)"
    )

    # 1 ------------------------------------------------------------------------------------
    phase(1, "A fresh database")
    say(f"A new SQLite file in a temporary directory: {demo.db}")
    outcome = demo.manage("migrate", "-v", "0")
    expect(outcome.code == 0, "manage.py migrate failed")
    say("Tables created.")

    # 2 ------------------------------------------------------------------------------------
    phase(2, "Start an import, and crash it")
    say(
        f"We start the import and watch it. After {CRASH_AFTER} of the {PRODUCTS} "
        "descriptions, we kill it with SIGKILL: the process stops at once and gets no chance "
        "to clean up or save anything."
    )
    run_id = "import-acme-demo"
    demo.crash_mid_enrich(run_id)
    say("The process is gone.")

    # 3 ------------------------------------------------------------------------------------
    phase(3, "What the crash left behind")
    say("The snapshot of the run, read from the database (the warlock_ai Snapshot model):")
    demo.show_snapshot(run_id)
    row = demo.snapshot(run_id)
    expect(row.status == "running", f"after the crash the status is {row.status!r}")
    expect(row.next_step == "enrich", f"after the crash the next step is {row.next_step!r}")
    expect(
        set(row.to_snapshot().completed_steps) == {"fetch", "normalize"},
        f"completed steps after the crash: {row.to_snapshot().completed_steps}",
    )
    say(
        "The status still says running: nobody was left to change it. fetch and normalize "
        "are done and saved. The descriptions written before the crash were lost with the "
        "process, because a snapshot is taken after each step, not inside one; enrich will "
        "run again from its start."
    )
    demo.check_executions(run_id, {"fetch": 1, "normalize": 1, "enrich": 1, "upsert": 0})
    expect(Product.objects.count() == 0, "products were saved before upsert ran")
    say("No product is in the catalog yet.")

    # 4 ------------------------------------------------------------------------------------
    phase(4, "Resume the run")
    say("Later (after a restart, a redeploy), we resume the run by its id:")
    outcome = demo.manage("resume_run", run_id)
    expect(outcome.code == 0, f"resume_run {run_id} exited {outcome.code}")
    demo.check_status(run_id, "completed")
    demo.check_executions(run_id, {"fetch": 1, "normalize": 1, "enrich": 2, "upsert": 1})
    say(
        "fetch and normalize ran once in all: the resumed run started at enrich. enrich ran "
        "twice (the killed attempt and the resumed one), upsert once."
    )
    products = list(Product.objects.filter(vendor_id="acme").order_by("sku"))
    expect(len(products) == PRODUCTS, f"{len(products)} products saved, expected {PRODUCTS}")
    expect(all(p.description for p in products), "a product has no description")
    say(f"All {len(products)} products are in the catalog, each with a description. A few:")
    for product in products[:3]:
        print(f"     {product.sku}  {product.title}  {product.price} EUR")
        print(textwrap.indent(textwrap.fill(product.description, 80), "       "))

    # 5 ------------------------------------------------------------------------------------
    phase(5, "Three more crashes, then a new version of the workflow")
    say("Three more imports crash the same way, still under version 1 of the workflow:")
    drifted = ["import-acme-2", "import-acme-3", "import-acme-4"]
    for other in drifted:
        demo.crash_mid_enrich(other)
        demo.check_status(other, "running")
    say(
        "Now version 2 is deployed. It renames the last step from upsert to save_products, so "
        "its structure (and its signature) differ from the version the three runs started "
        "with. We set CATALOG_IMPORT_VERSION=2 for every command from here on:"
    )
    print("   $ export CATALOG_IMPORT_VERSION=2")
    demo.env["CATALOG_IMPORT_VERSION"] = "2"
    say("Resuming one of the three runs now fails, and runs nothing:")
    before = demo.executions(drifted[0])
    outcome = demo.manage("resume_run", drifted[0])
    expect(outcome.code == 1, f"resume_run of a drifted run exited {outcome.code}, expected 1")
    expect(
        len(outcome.stderr) == 1 and outcome.stderr[0].startswith("error: "),
        f"expected one 'error: ' line on stderr, got {outcome.stderr}",
    )
    expect(
        drifted[0] in outcome.stderr[0] and "signature" in outcome.stderr[0],
        f"expected the drift error (naming the run and the signatures), got {outcome.stderr}",
    )
    expect(demo.executions(drifted[0]) == before, "a step ran although the resume was refused")
    demo.check_status(drifted[0], "running")
    say(
        "warlock_ai refuses to guess whether a run started under the old definition can "
        "safely continue under the new one. An operator decides, in one of three ways."
    )

    # 6 ------------------------------------------------------------------------------------
    phase(6, "Way out 1: discard the run and start it again")
    say(
        f"The safest choice when the change is large: delete the snapshot of {drifted[0]} "
        "and run the import again from the start, under version 2, with the same run id."
    )
    demo.shell(DISCARD_CODE.format(run_id=drifted[0]))
    expect(
        not Snapshot.objects.filter(run_id=drifted[0]).exists(),
        "the snapshot is still there after the discard",
    )
    outcome = demo.manage("execute_run", FLOW, "--input", INPUT, "--run-id", drifted[0], fold=True)
    expect(outcome.code == 0, f"execute_run {drifted[0]} exited {outcome.code}")
    demo.check_status(drifted[0], "completed")
    demo.check_executions(
        drifted[0], {"fetch": 2, "normalize": 2, "enrich": 2, "upsert": 0, "save_products": 1}
    )
    say("Every step ran again; the crashed attempt's fetch and normalize are counted too.")

    # 7 ------------------------------------------------------------------------------------
    phase(7, "Way out 2: force the resume")
    say(
        f"{drifted[1]} stopped in enrich, before the renamed step, so it is safe to continue "
        "it under version 2 as it is. --force skips the check:"
    )
    outcome = demo.manage("resume_run", drifted[1], "--force", fold=True)
    expect(outcome.code == 0, f"resume_run {drifted[1]} --force exited {outcome.code}")
    demo.check_status(drifted[1], "completed")
    demo.check_executions(
        drifted[1], {"fetch": 1, "normalize": 1, "enrich": 2, "upsert": 0, "save_products": 1}
    )
    say("fetch and normalize did not run again; the run finished with save_products.")

    # 8 ------------------------------------------------------------------------------------
    phase(8, "Way out 3: migrate the snapshot")
    say(
        f"For a change you can translate, rewrite the snapshot of {drifted[2]}: rename its "
        "step records as version 2 names them, and accept the new signature. (This run "
        "stopped before upsert, so there is no record to rename and the next step, enrich, "
        "stays the same; the code handles both cases.)"
    )
    outcome = demo.shell(MIGRATE_CODE.format(run_id=drifted[2]))
    expect(
        any(line.startswith(f"migrated {drifted[2]}") for line in outcome.stdout),
        "the migration printed nothing",
    )
    say("Now a plain resume, without --force, is accepted:")
    outcome = demo.manage("resume_run", drifted[2], fold=True)
    expect(outcome.code == 0, f"resume_run {drifted[2]} exited {outcome.code}")
    demo.check_status(drifted[2], "completed")
    demo.check_executions(
        drifted[2], {"fetch": 1, "normalize": 1, "enrich": 2, "upsert": 0, "save_products": 1}
    )

    # summary ------------------------------------------------------------------------------
    phase(9, "Summary")
    rows = {r.run_id: r for r in Snapshot.objects.filter(run_id__in=[run_id, *drifted])}
    how = {
        run_id: "crashed, resumed",
        drifted[0]: "crashed, drifted, discarded, run again",
        drifted[1]: "crashed, drifted, force-resumed",
        drifted[2]: "crashed, drifted, migrated, resumed",
    }
    for rid, story in how.items():
        row = rows.get(rid)
        expect(row is not None and row.status == "completed", f"{rid} did not complete")
        counts = demo.executions(rid)
        ran = ", ".join(f"{s} x{counts[s]}" for s in steps if counts[s])
        print(f"     {rid:<17} v{row.version}  {row.status:<10} {story}")
        print(f"     {'':<17} step bodies run: {ran}")
    total = Product.objects.count()
    expect(total == PRODUCTS, f"{total} products in the catalog, expected {PRODUCTS}")
    say()
    say(
        f"4 runs, 4 crashes, 0 finished steps repeated by a resume, {total} products in the "
        "catalog. Every check passed."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the demo database")
    args = parser.parse_args(argv)
    os.environ.pop("CATALOG_IMPORT_VERSION", None)
    return drive(Demo, run, "warlock-demo-", keep=args.keep)


def drive(demo_class: type, script: Any, prefix: str, keep: bool) -> int:
    """Set up a fresh database and Django in this process, run ``script(demo)``, clean up;
    0 when every check passed (the support demo reuses it)."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    demo = demo_class(workdir)
    # This process reads the same database, through the ORM, to show and check what happened.
    os.environ["WARLOCK_DB_URL"] = demo.env["WARLOCK_DB_URL"]
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    os.chdir(REPO)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()
    try:
        script(demo)
    except DemoFailure as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            print(f"\n   The database is kept: {demo.db}")
            print(f"   WARLOCK_DB_URL=sqlite:///{demo.db} python manage.py runserver")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n   Done in {time.monotonic() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
