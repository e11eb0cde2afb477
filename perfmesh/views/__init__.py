"""Showing the fleet: the fleet view model behind ``top`` and the web page, text rendering for
the CLI, and the standalone HTML report. Peer-supplied strings are escaped here.

May import: ``perfmesh.errors``, ``model``, ``protocol``, ``rules``.
"""
