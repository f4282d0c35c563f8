"""The orchestrator's records. Its append-only checkpoints are stored already (the stores,
the ``Checkpoint`` model, the sessions admin); the orchestrator itself builds on the run
kernel."""
