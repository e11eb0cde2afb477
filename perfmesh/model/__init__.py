"""The value model: metrics, system snapshots, typed parameters and series keys, and the facts
every part shares: host names and addresses (``address``), finite numbers (``metric``), the
percentile (``percentile``) and the bounded LRU (``lru``), each written once.

Pure data with ``to_dict``/``from_dict``; the vocabulary every other part speaks.
May import: the standard library and ``perfmesh.errors`` only.
"""
