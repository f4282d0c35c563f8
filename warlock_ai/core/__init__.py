"""The pure engine. Nothing in this package imports Django (a test enforces it).

- ``runs/``: the kernel every durable kind shares (definition, run loop, writer, leases,
  snapshots, effects, events, cancellation, signatures, drift, kind descriptors);
- ``workflow/``, ``supervisor/``: one package per kind, each built on ``runs/``;
- ``agents/``: agents, tools, messages, middleware, output schemas;
- ``orchestrator/``: the orchestrator's checkpoint records;
- ``errors.py``: every error class.
"""
