"""The wire protocol: the msgpack envelope, columnar metric batches, and (``kinds``) every
message kind, event type, state, api op and status by name.

msgpack is imported here only (in ``wire.py``). Frames from peers are decoded as untrusted.
May import: ``perfmesh.errors``, ``perfmesh.model``.
"""
