"""Acting on the numbers: the ``OptimizationEngine`` (exact-match strategy registry, typed
parameters, validation before and after, rollback) and the built-in strategies.

May import: ``perfmesh.errors``, ``perfmesh.model``.
"""
