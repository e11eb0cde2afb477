"""Judging the numbers: performance budgets, alert rules and their state machine, bottleneck
analysis and baselines.

Pure: time is passed in as ``now`` (or an injected clock); nothing here reads the wall clock.
May import: ``perfmesh.errors``, ``perfmesh.model``, ``perfmesh.protocol.kinds``.
"""
