"""Report: the paper's tables and figures from the measures, and image panels of reconstructions.

Imports point down the data flow: to ``measures``, ``runs``, ``data`` and the top level, never
to ``book``.
"""
