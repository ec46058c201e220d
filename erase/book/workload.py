"""What a build of the book will compute, counted and timed before it starts.

Each chapter's runs are listed by the same ``*_jobs`` functions its calls run
(``studies.study``, ``headline``, ``fidelity``, ``geometry``) with the chapters' default
parameters; a run counts in the first chapter that needs it, and only when the results store
does not hold it yet. Its time comes from a few training steps timed on this machine
(``runs.plan.time_step``) and the run's length (``runs.plan.work``), not from a constant.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..config import config_hash
from ..runs.lab import Job
from ..runs.methods import BEYOND
from ..runs.plan import duration, seconds, time_step_together, work
from ..runs.store import finished_keys
from ..studies import fidelity, headline, replay, study

REPLAY_STEP_COST = 2.0  # a replay's step takes two gradients (forget and retain term) and a step


@dataclass(frozen=True)
class Planned:
    """One run the book needs: a training or unlearning ``job`` of ``lab``, or (``replay``)
    Figure 4's replay of its first epoch. ``standin``: a run whose knob is chosen while the
    book runs (a method beyond the paper on a later seed, before its sweep is stored; a
    frontier's next search value), counted at another knob of the same row: same length, a
    key of its own (``tag`` tells apart several of one row)."""

    lab: object
    job: Job
    replay: bool = False
    standin: bool = False
    tag: int = 0

    @property
    def kind(self) -> str:
        return "replay" if self.replay else self.job.kind

    def config(self) -> dict:
        return (replay.trace_config(self.lab, self.job) if self.replay
                else self.lab.config(self.job))

    @cached_property
    def key(self) -> str:
        config = self.config()
        return config_hash({**config, "standin": self.tag} if self.standin else config)

    def seconds(self, step_seconds: float) -> float:
        """Its time at ``step_seconds`` a training step, on one worker."""
        lab = self.lab
        if self.replay:
            epoch = work(lab, self.job)["steps"] / max(1, int(self.job.knobs.get("epochs", 1)))
            return epoch * step_seconds * REPLAY_STEP_COST
        return seconds(lab, work(lab, self.job), step_seconds)


RUNNING_CHAPTERS = ("book/01_introduction", "book/03_knowledge_gap", "book/04_unlearning",
                    "book/05_forgetting_audit", "book/06_data_efficiency",
                    "book/07_paper_and_code", "book/08_scorecard")  # the keys of chapter_runs


def chapter_runs(lab) -> dict[str, list[Planned]]:
    """{chapter: the runs its calls make, at its default parameters} (``RUNNING_CHAPTERS``)."""
    profile = lab.profile
    labs = study.labs_for(lab, list(profile.seeds))
    models = [Planned(l, j) for l, j in study.model_jobs(labs)]
    chosen = []  # the methods beyond the paper on the later seeds, at their sweep's choice
    for m in BEYOND:
        value = study.known_choice(labs[0], m)
        chosen += [Planned(l, l.job(m, curve=False), standin=True) if value is None
                   else Planned(l, study.beyond_job(l, m, value)) for l in labs[1:]]
    ablation_labs = study.labs_among(labs, lab, profile.ablation_seeds)
    after = headline.after_models(labs, ablation_labs)
    headline_runs = models + [Planned(l, j) for l, j in after] + chosen + frontier_runs(labs)
    ablation = [Planned(l, j) for l, _, _, j in study.ablation_jobs(ablation_labs,
                                                                     profile.fractions)]
    replays = [Planned(lab, lab.job(m), replay=True) for m in replay.FIGURE4_METHODS]
    # chapter 7's default: no training flip (training_seeds = [])
    flipped, _ = fidelity.flipped_jobs(labs, training_seeds=())
    paper_and_code = [Planned(l, j) for _, l, j in fidelity.code_jobs(labs) + flipped
                      + fidelity.raw_jobs(labs)]
    return {
        "book/01_introduction": headline_runs,
        "book/03_knowledge_gap": models + [Planned(lab, lab.job("NL-FT"))],
        "book/04_unlearning": headline_runs + replays + [  # and its exercise's
            Planned(lab, study.ablation_job(lab, "NL-FT", 0.2))],
        "book/05_forgetting_audit": headline_runs,
        "book/06_data_efficiency": models + ablation,
        "book/07_paper_and_code": models + paper_and_code,
        "book/08_scorecard": headline_runs,
    }


def frontier_runs(labs) -> list[Planned]:
    """The frontiers' search runs (``study.frontier_steps`` on what the store holds): the next
    value of each search, known, and the rest of its budget as stand-ins."""
    found, pending = study.frontier_steps(labs, lambda lab, job: lab.stored(job))
    runs = [Planned(lab, study.frontier_job(lab, m, x)) for m, lab, x in pending]
    for (m, seed), records in found.items():
        lab = next(l for l in labs if l.seed == seed)
        waiting = sum(1 for mm, l, _ in pending if (mm, l.seed) == (m, seed))
        spare = study.FRONTIER[m].points - len(records) - max(waiting, 0)
        job = study.frontier_job(lab, m, study.FRONTIER[m].start[-1])
        runs += [Planned(lab, job, standin=True, tag=i) for i in range(max(spare, 0))]
    return runs


@dataclass
class Workload:
    """The runs a build still has to compute, by the first chapter that needs each, and their
    estimated times (seconds on one worker)."""

    chapters: dict = field(default_factory=dict)  # {chapter: [Planned]}
    estimates: dict = field(default_factory=dict)  # {key: seconds}
    stored: int = 0  # runs the chapters need that the store already holds
    step_seconds: float = 0.0
    workers: int = 1

    def runs(self) -> list[Planned]:
        return [p for runs in self.chapters.values() for p in runs]

    def counts(self) -> dict:
        """{kind: how many} of the runs to compute."""
        out = {"train": 0, "unlearn": 0, "replay": 0}
        for p in self.runs():
            out[p.kind] += 1
        return out

    def seconds(self, runs=None) -> float:
        """Estimated wall time of ``runs`` (default: all) spread over the workers."""
        runs = self.runs() if runs is None else runs
        return sum(self.estimates[p.key] for p in runs) / max(1, self.workers)

    def line(self) -> str:
        """What ``erase book`` says before it computes anything."""
        c = self.counts()
        if not sum(c.values()):
            return f"book: every run the chapters need is in the store ({self.stored} runs)"
        later = sum(p.standin for p in self.runs())
        return (f"book: {c['train']} trainings, {c['unlearn']} unlearning runs and "
                f"{c['replay']} replays to compute ({self.stored} already stored"
                + (f"; {later} of the runs are searches' later steps, which a search that "
                   "ends early skips" if later else "") + "): about "
                f"{duration(self.seconds())} on this machine with {self.workers} worker "
                f"process{'es' if self.workers != 1 else ''} (a training step took "
                f"{self.step_seconds:.3g} s here)")


def workload(lab, documents, step_seconds: float | None = None) -> Workload:
    """The runs the chapters ``documents`` (toc order) still need, each in the first chapter
    that needs it; ``step_seconds``: a timing already made (else a few steps are timed)."""
    planned = chapter_runs(lab)
    finished = finished_keys(lab.results)  # (a damaged record is recomputed all the same)
    seen, stored, chapters = set(), 0, {}
    for doc in documents:
        for p in planned.get(doc, []):
            key = p.key
            if key in seen:
                continue
            seen.add(key)
            if key in finished:
                stored += 1
            else:
                chapters.setdefault(doc, []).append(p)
    todo = [p for runs in chapters.values() for p in runs]
    step = 0.0
    if todo:  # timed as the workers will run: that many processes at once
        step = (step_seconds if step_seconds is not None
                else time_step_together(lab, lab.profile.workers))
    return Workload(chapters=chapters, estimates={p.key: p.seconds(step) for p in todo},
                    stored=stored, step_seconds=step, workers=lab.profile.workers)
