"""Studies: the paper's experiments as runs over seeds. Which runs a chapter needs, run once
through ``erase.runs.lab`` (or read from the store), then measured by ``erase.measures``:
``study`` (models, unlearning runs, the ablation, sweeps, frontiers over seeds), ``headline``
(every run the verdicts rest on, and the scorecard), ``fidelity`` (paper against code),
``replay`` (Figure 4's replay) and ``costs`` (what runs cost, what a rerun still needs).
"""
