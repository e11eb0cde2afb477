"""The ``perfmesh.toml`` file: its schema (defaults read from the dataclasses they configure),
validation with messages that name the dotted key and what was expected, and the example.

May import: ``perfmesh.errors``, ``model``, ``collect``, ``rules``, ``mesh``, ``optimize``.
"""
