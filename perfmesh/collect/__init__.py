"""Sampling the system: /proc parsers, the psutil and stdlib sources, counter rates and the
thread-driven ``MetricsCollector``.

psutil is imported here only (in ``psutil_source.py``) and is optional: /proc is the fallback.
May import: ``perfmesh.errors``, ``perfmesh.model``.
"""
