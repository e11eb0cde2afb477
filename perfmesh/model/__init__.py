"""The value model: metrics, system snapshots, typed parameters and series keys.

Pure data with ``to_dict``/``from_dict``; the vocabulary every other part speaks.
May import: the standard library and ``perfmesh.errors`` only.
"""
