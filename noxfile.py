"""The test matrix: ``make test-matrix`` (``.venv/bin/nox``).

``make test`` runs everything on the machine's Python (3.11 here) with the newest Django it
installs (5.2 LTS). These sessions run the suite again on Django 6.1, on Python 3.12 and 3.13,
each in a virtualenv of its own under ``.nox/``, and each a share of the suite (``SHARES``):
Django's checks on the example project,
models that agree with their migrations, then pytest, all but what does not depend on Django's
version or the interpreter's (the offline embedder's model, which needs torch and the
``local`` extra, and the packaging test, which builds the same wheel on any Python).

Interpreters are found on ``PATH`` or in pyenv's versions. One PostgreSQL with pgvector is
shared by every session (``$WARLOCK_TEST_PG_URL``, or a pgserver started here by the project's
``.venv``: pgserver has no wheel for 3.13); PostgreSQL 15 and Redis are found or started by
``tests/services.py`` as in ``make test``.
"""

from __future__ import annotations

import atexit
import glob
import os
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
MATRIX = {"3.12": "6.1", "3.13": "6.1"}
#: Each session runs its share of the suite (pytest's ``-m``), so that every test runs once
#: on Django 6.1 and the matrix costs one suite, not two (CI has 90 minutes on two cores):
#: the tests that kill processes, soak or take long (``crash``, ``slow``) on 3.12, the others
#: on 3.13. ``make test`` runs all of them on 3.11 and Django 5.2; ``NOX_ARGS='-- -m ""'``
#: runs everything in every session.
SHARES = {"3.12": "crash or slow", "3.13": "not crash and not slow"}
EXTRAS = "postgres,redis,rq,tasks,api,openai,dev"
#: What the sessions leave out (see the module's docstring): files, and the doc pages whose
#: examples load the offline embedder.
LEFT_OUT = [
    "tests/providers/test_local_embedder.py",
    "tests/providers/test_semantic_cache_pairs.py",
    "tests/packaging",
]
DESELECTED = [
    f"tests/docs/test_doc_examples.py::test_the_blocks_of_a_page_run_in_order[docs/{page}]"
    for page in ("cache-and-memory.md", "providers.md")
]

nox.options.sessions = ["django"]
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = True


def _add_pyenv_interpreters() -> None:
    """Put pyenv's ``bin`` directories of the matrix's versions on ``PATH`` (its shims find
    only the versions pyenv is told to use)."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    extra = []
    for version in MATRIX:
        found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
        if found:  # before PATH: a pyenv shim there may refuse a version not selected
            extra.append(str(Path(found[-1]).parent))
    if extra:
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


def _shared_postgres() -> None:
    """``$WARLOCK_TEST_PG_URL`` for every session: set already, or a pgserver kept by a
    ``tests/services.py serve-postgres`` process of the project's venv until nox exits."""
    if os.environ.get("WARLOCK_TEST_PG_URL"):
        return
    python = ROOT / ".venv" / "bin" / "python"
    server = subprocess.Popen(
        [str(python), str(ROOT / "tests" / "services.py"), "serve-postgres"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert server.stdout is not None and server.stdin is not None
    url = server.stdout.readline().strip()
    if not url:
        server.kill()
        raise SystemExit("tests/services.py serve-postgres printed no URL; run `make venv`")
    os.environ["WARLOCK_TEST_PG_URL"] = url

    def stop() -> None:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    atexit.register(stop)


_add_pyenv_interpreters()


@nox.session(python=list(MATRIX))
def django(session: nox.Session) -> None:
    """The suite on Django 6.1 (``MATRIX``), this interpreter's share of it (``SHARES``)."""
    _shared_postgres()
    version = MATRIX[str(session.python)]
    session.install("-e", f".[{EXTRAS}]", f"Django~={version}.0")
    installed = session.run("python", "-c", "import django; print(django.__version__)", silent=True)
    session.log(f"Django {str(installed).strip()}")
    session.run("python", "manage.py", "check", "--fail-level", "WARNING")
    session.run("python", "manage.py", "makemigrations", "--check", "--dry-run")
    ignores = [f"--ignore={path}" for path in LEFT_OUT]
    ignores += [f"--deselect={test}" for test in DESELECTED]
    share = ["-m", SHARES[str(session.python)]]
    session.run("python", "-m", "pytest", *ignores, *share, *session.posargs)
