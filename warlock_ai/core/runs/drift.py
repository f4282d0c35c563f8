"""What changed between two structural fingerprints: the drift diff the admin shows.

Each kind computes its own (``workflow.drift``, ``supervisor.drift``); this is the shape
they share, and what an operator reads when choosing between discard, force and migrate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DefinitionDiff:
    """Differences from the stored definition (``saved``) to the current one."""

    version: tuple[Any, Any] | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown: bool = False  # the stored fingerprint was not recorded
    noun: str = "step"

    def __bool__(self) -> bool:
        return self.unknown or any(
            (
                self.version,
                self.added,
                self.removed,
                self.renamed,
                self.moved,
                self.changed,
                self.notes,
            )
        )

    def lines(self) -> list[str]:
        """One human sentence per difference."""
        if self.unknown:
            return ["the stored run did not record its definition's structure (only its hash)"]
        out = []
        if self.version:
            old, new = self.version
            out.append(f"version changed from {old or '(none)'} to {new or '(none)'}")
        noun = self.noun
        out += [f'{noun} "{old}" renamed to "{new}"' for old, new in self.renamed]
        out += [f'{noun} "{name}" added' for name in self.added]
        out += [f'{noun} "{name}" removed' for name in self.removed]
        out += [f'{noun} "{name}" moved' for name in self.moved]
        out += [f'{noun} "{name}": {what}' for name, what in self.changed]
        return out + self.notes
