"""Shared fixtures: one smoke-scale Lab with G (original) and G-hat (oracle) trained once per
session.

Expensive things (synthetic data, the two trained models) are made once, in a temporary results
directory, and shared; tests that need a state of their own make their own small one.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import shared_unless_mutating


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than 30 s (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "trains: uses the shared Lab's trained G and G-hat "
                                       "(deselect with -m 'not trains', as `make mutants` does)")


def pytest_collection_modifyitems(config, items):
    """Mark the tests that need the session's trained models: each run of them starts by
    training G and G-hat, too slow to repeat for every mutant of a mutation run."""
    for item in items:
        if "trained" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trains)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny networks on a shared 2-core machine: one thread is faster than two fighting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Every chapter of the book executed at smoke scale into one temporary build folder, in
    toc order: {"out", "timings", "error", "log"}. The book's tests read it; the printed
    commands' test reruns chapters on a copy of its results store."""
    import contextlib
    import io

    from erase.book import build as book

    root = Path(__file__).resolve().parents[1]
    out = tmp_path_factory.mktemp("book")
    error, log = None, io.StringIO()
    try:
        with contextlib.redirect_stdout(log):  # not a terminal: plain progress lines
            timings = book.execute(root, scale="smoke", results_dir=out / "_output", out=out)
    except book.BookError as err:
        timings, error = {}, str(err)
    return {"out": out, "timings": timings, "error": error, "log": log.getvalue()}


@pytest.fixture(scope="session")
def smoke():
    from erase.config import get_scale

    return get_scale("smoke")


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="session")
def lab(results_dir):
    """The shared smoke Lab (embedded synthetic data, seed 0) on the session's results dir."""
    from erase.runs.lab import Lab

    return Lab(scale="smoke", results_dir=results_dir, progress=False)


@pytest.fixture(scope="session")
def trained(lab):
    """G first, then G-hat, in the shared store: {"original": record, "oracle": record}."""
    original = lab.train("original")
    oracle = lab.train("oracle")
    return {"original": original, "oracle": oracle}


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory, smoke) -> Path:
    """A smoke-scale synthetic data root of its own (seed 0), for tests that only read files."""
    from erase.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("smoke-data") / "data"
    synthesize(root, smoke.data, 0)
    return root


@pytest.fixture(scope="session")
def samples(smoke_data, smoke, tmp_path_factory):
    """A few loaded VarNet samples: {"retain": [...], "forget": [...]} (seed-0 split)."""
    from erase import data as data_lib

    manifest = data_lib.make_manifest(data_lib.scan(smoke_data), smoke.data, 0)
    work = tmp_path_factory.mktemp("work")
    return {split: data_lib.load_split(manifest, split, smoke_data, smoke.data, work)
            for split in ("retain", "forget")}


@pytest.fixture(scope=shared_unless_mutating)
def small_g(smoke, samples, tmp_path_factory):
    """A small G: three epochs on four retain slices under the code's protocol, its rate
    dropped twice by an impatient scheduler, so that its Adam state, step counts and rate all
    differ from a fresh optimizer's. Returns (checkpoint path, checkpoint state)."""
    import torch
    from helpers import fresh_model, impatient

    from erase.config import PROTOCOLS
    from erase.runs.engine import Loop, make_fabric, run_loop
    from erase.runs.methods import METHODS

    path = tmp_path_factory.mktemp("g") / "g.ckpt"
    with pytest.MonkeyPatch.context() as patch:
        impatient(patch)
        loop = Loop(method=METHODS["Retrain"], forget=None,
                    retain=samples["retain"].select(range(4)), epochs=3, train=smoke.train,
                    seed=0, checkpoint=path, protocol=PROTOCOLS["code"], progress=False)
        run_loop(loop, fresh_model(smoke), make_fabric("cpu"))
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["optimizer"]["state"], "G's Adam state is empty"
    assert state["optimizer"]["param_groups"][0]["lr"] < smoke.train.lr
    return path, state
