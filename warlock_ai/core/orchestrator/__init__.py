"""Orchestrators: multi-turn sessions over a supervisor's intents, one append-only checkpoint
row per settled turn, turns of a session serialised by a session lock."""

from .checkpoints import CheckpointRecord
from .definition import Orchestrator, orchestrator
from .kind import ORCHESTRATOR
from .locks import NoSessionLock, ProcessSessionLock, SessionLock
from .results import AWAITING_INPUT, Compaction, OrchestratorReport, OrchestratorResult
from .snapshot import TurnSnapshot, turn_run_id

__all__ = [
    "AWAITING_INPUT",
    "ORCHESTRATOR",
    "CheckpointRecord",
    "Compaction",
    "NoSessionLock",
    "Orchestrator",
    "OrchestratorReport",
    "OrchestratorResult",
    "ProcessSessionLock",
    "SessionLock",
    "TurnSnapshot",
    "orchestrator",
    "turn_run_id",
]
