"""Keeping what was accepted: the aggregator's SQLite store (WAL; its layout, queries and
writer) and its salvage, the agent's spool of recent batches, and the audit log.

May import: ``perfmesh.errors``, ``model``, ``protocol``.
"""
