"""The mesh's state machines: ``Fleet`` (the aggregator's core: ``fleet``, ``hosts``,
``gaps``), ``admission`` (which peer may send what, and body checks), the agent's core
(``agent_core``), sequence tracking, command correlation, bounded history, rate limits and
restart backoff.

Pure: every decision is a function of (state, message, now) returning what to send; no
sockets and no wall clock here (the worker shells in ``workers/`` pass time in).
May import: ``perfmesh.errors``, ``model``, ``protocol``, ``rules``, ``optimize``.
"""
