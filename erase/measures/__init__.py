"""Measures: what the runs' results say, read from their records. Intervals over seeds, the
regime, hallucination analysis, the geometry of unlearning steps, fits, frontiers, the
scorecard of the paper's findings, the membership audits and the diagnosis of each verdict.

Nothing here starts a run (``erase.studies`` does). Imports point down the data flow: to
``erase.runs``' pure parts, ``erase.data`` and the top-level ``config`` and ``paper``, never
to ``studies``, ``report`` or ``book``.
"""
