"""Keeping what was accepted: the aggregator's SQLite store (WAL) and its salvage, the agent's
spool of recent batches, and the audit log.

May import: ``perfmesh.errors``, ``model``, ``protocol``.
"""
