"""The pure engine: workflows, steps, signatures, events, errors, snapshots.

Nothing in this package imports Django (a test enforces it).
"""
