"""Judging the numbers: performance budgets, alert rules and their state machine, bottleneck
analysis and baselines.

Pure: time is passed in as ``now``; nothing here reads the clock for a decision.
May import: ``perfmesh.errors``, ``perfmesh.model``.
"""
