"""Every Python block in the README and the docs is run here, or marked as not runnable.

A file's blocks run in order in one namespace, as a reader would type them into one shell
(Django configured with the test settings, a fresh test database). A block that cannot run as
it stands (a fragment of ``settings.py``, a signature, code that needs a model server) is
preceded by ``<!-- not run: why -->``. Every ``warlock_ai.…`` dotted path the docs name must
import.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARK = re.compile(r"^<!-- not run: (?P<why>\S.*?) -->$")


@dataclass
class Block:
    file: Path
    line: int  # of the opening fence, 1-based
    source: str
    not_run: str | None  # the reason, when marked

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().split("\n")
    found, n = [], 0
    while n < len(lines):
        if lines[n].strip() == "```python":
            end = n + 1
            while lines[end].strip() != "```":
                end += 1
            before = next((lines[k] for k in range(n - 1, -1, -1) if lines[k].strip()), "")
            mark = MARK.match(before.strip())
            indent = len(lines[n]) - len(lines[n].lstrip())
            body = "\n".join(line[indent:] for line in lines[n + 1 : end])
            found.append(Block(path, n + 1, body, mark["why"] if mark else None))
            n = end
        n += 1
    return found


ALL = [b for path in FILES for b in blocks(path)]
RUN_FILES = sorted({b.file for b in ALL if b.not_run is None})


def test_the_docs_have_python_blocks_and_every_mark_says_why_and_marks_a_block():
    assert len(ALL) > 40
    for path in FILES:
        text = path.read_text().split("\n")
        for n, line in enumerate(text):
            if line.strip().startswith("<!-- not run"):
                assert MARK.match(line.strip()), f"{path}:{n + 1}: write <!-- not run: why -->"
                following = next((t for t in text[n + 1 :] if t.strip()), "")
                assert following.strip() == "```python", f"{path}:{n + 1}: marks no block"


def run_block(block: Block, namespace: dict) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(block.source, block.where, "exec", flags=flags)
    try:
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(code, namespace))
        else:
            exec(code, namespace)
    except Exception as exc:
        raise AssertionError(f"{block.where}: {type(exc).__name__}: {exc}") from exc


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_blocks_of_a_page_run_in_order(path):
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    for block in blocks(path):
        if block.not_run is None:
            run_block(block, namespace)


#: A module path or a name in one (``warlock_ai.a.b``...); ``warlock_ai.X`` alone is also how
#: the docs write model labels, permissions, check ids and logger names.
DOTTED = re.compile(r"`(warlock_ai(?:\.[A-Za-z_][A-Za-z0-9_]*){2,})`")


def named_paths() -> set[str]:
    return {m for path in FILES for m in DOTTED.findall(path.read_text())}


def test_every_dotted_path_the_docs_name_imports():
    paths = named_paths()
    assert "warlock_ai.stores.redis.RedisSnapshotStore" in paths
    missing = []
    for dotted in sorted(paths):
        module, _, attr = dotted.rpartition(".")
        try:
            importlib.import_module(dotted)
            continue
        except ImportError:
            pass
        try:
            getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{dotted}: {exc}")
    assert not missing, "\n".join(missing)
