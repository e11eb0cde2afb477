"""The library inside one process: ``PerformanceManager``, the timing and memory decorators
(``PerformanceUtils``, ``PerformanceContext``) and application metrics.

No sockets: joining the mesh goes through a factory that the caller (or ``workers/``) injects.
May import: every other part of ``perfmesh`` except ``views`` and ``store``.
"""
