"""Supervisors: each iteration a router picks intents, they run, their outputs merge."""

from .definition import Supervisor, supervisor
from .intents import intent
from .kind import SUPERVISOR
from .results import SupervisorContext, SupervisorReport, SupervisorResult
from .snapshot import SupervisorSnapshot

__all__ = [
    "SUPERVISOR",
    "Supervisor",
    "SupervisorContext",
    "SupervisorReport",
    "SupervisorResult",
    "SupervisorSnapshot",
    "intent",
    "supervisor",
]
