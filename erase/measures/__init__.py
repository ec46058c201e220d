"""Measures: what the runs' results say. Hallucination analysis, the geometry of unlearning
steps, fits, the paper's experiments as studies over seeds, and the scorecard of its findings.

Imports point down the data flow: to ``erase.runs``, ``erase.data`` and the top-level
``config`` and ``paper``, never to ``report`` or ``book``.
"""
