"""The wire protocol: the msgpack envelope, columnar metric batches, and every message kind.

msgpack is imported here only (in ``wire.py``). Frames from peers are decoded as untrusted.
May import: ``perfmesh.errors``, ``perfmesh.model``.
"""
