"""Speaking Prometheus: one naming rule from perfmesh series to Prometheus metric names (used
by ``/metrics`` and remote write alike), the remote-write 1.0 encoding (protobuf + snappy) and
the bounded, byte-limited send queue with its backoff.

Pure: time is passed in as ``now``; nothing here reads the clock or touches a socket.
May import: ``perfmesh.errors``, ``perfmesh.model``, ``perfmesh.protocol``.
"""
