"""The ``perfmesh.toml`` file, one module per concern: ``schema`` (the typed result, parse and
load), ``validation`` (every problem with its dotted key and what was expected), ``settings``
(defaults, then the file, then the command-line flags) and ``example`` (the commented example).

May import: ``perfmesh.errors``, ``model``, ``collect``, ``rules``, ``mesh``, ``optimize``.
"""
