"""Real fastMRI as users meet it: the release's folders decide the split, any sample size splits.

A tiny data root laid out like the public release (``brain_multicoil_train/``,
``brain_multicoil_val/``, ``knee_multicoil_train/``, ``knee_multicoil_val/``, a handful of
small synthetic fastMRI files each) is split by those folders at every scale profile; the same
files in one flat folder still split at random; the embedded data sets keep the split they
always had.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from erase import data as data_lib
from erase.cli import main
from erase.config import SCALES, DataConfig, get_scale
from erase.data import split as split_lib
from erase.data.simulate import acquire, write_fastmri_file
from erase.data.synthetic import synthesize, volume_plan, write_volume

LAYOUT = {"brain_multicoil_train": ("brain", 7), "brain_multicoil_val": ("brain", 3),
          "knee_multicoil_train": ("knee", 6), "knee_multicoil_val": ("knee", 3)}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A root in the release's layout: 7 + 3 brain AXT2, 6 + 3 knee volumes of 32x32, one
    AXFLAIR brain volume among the training files, and a test folder whose file has no target
    (as fastMRI's test folders), which must never be read."""
    root = tmp_path_factory.mktemp("release")
    config = DataConfig(brain_volumes=10, knee_volumes=9, slices_per_volume=2)
    made = tmp_path_factory.mktemp("made")
    plan = volume_plan(config, seed=3)
    for item in plan:
        write_volume(made, item, config)
    brain = [made / p["name"] for p in plan if p["anatomy"] == "brain"]
    knee = [made / p["name"] for p in plan if p["anatomy"] == "knee"]
    for folder, (anatomy, count) in LAYOUT.items():
        (root / folder).mkdir()
        pool = brain if anatomy == "brain" else knee
        for _ in range(count):
            source = pool.pop(0)
            shutil.move(source, root / folder / source.name)
    rng = np.random.default_rng(0)
    kspace, target = acquire(rng.random((2, 32, 32)), 2, 0.01, rng)
    write_fastmri_file(root / "brain_multicoil_train" / "file_brain_AXFLAIR_200_6002000.h5",
                       kspace, target, "AXFLAIR", "synthetic-flair")
    (root / "brain_multicoil_test").mkdir()
    (root / "brain_multicoil_test" / "file_brain_AXT2_200_6009999.h5").write_bytes(b"no target")
    return root


def folder_of(entry: dict) -> str:
    return Path(entry["path"]).parts[0]


@pytest.mark.parametrize("scale", list(SCALES))
def test_release_folders_decide_the_split_at_every_profile(release, scale):
    config = SCALES[scale].data
    volumes = data_lib.scan(release)
    assert {folder_of(v) for v in volumes} == set(LAYOUT)  # the test folder is never read
    manifest = data_lib.make_manifest(volumes, config, seed=0, data_root=release)
    assert manifest["rule"] == "release"
    splits = manifest["splits"]
    assert {folder_of(e) for e in splits["brain_test"]} == {"brain_multicoil_val"}
    assert {folder_of(e) for e in splits["knee_test"]} == {"knee_multicoil_val"}
    for name in ("retain", "forget", "val"):
        assert {folder_of(e) for e in splits[name]} <= {"brain_multicoil_train",
                                                        "knee_multicoil_train"}, name
    assert {folder_of(e) for e in splits["retain"]} == {"brain_multicoil_train"}
    assert {folder_of(e) for e in splits["forget"]} == {"knee_multicoil_train"}
    assert {e["anatomy"] for e in splits["val"]} == {"brain", "knee"}
    assert all(splits[name] for name in data_lib.SPLITS)
    # every brain training volume is used; the test sets take the val folders up to the target
    used = {e["path"] for entries in splits.values() for e in entries}
    brain_train = [v["path"] for v in volumes if folder_of(v) == "brain_multicoil_train"
                   and v["anatomy"] == "brain"]
    assert set(brain_train) <= used
    assert not any("AXFLAIR" in p for p in used)
    assert len(splits["brain_test"]) == min(3, config.test_volumes)
    left = manifest["left_out"]
    assert left["other_contrasts"] == 1 and left["outside_release_folders"] == 1
    knee_train = sum(folder_of(v) == "knee_multicoil_train" for v in volumes)
    assert left["unused_knee"] + len(splits["forget"]) + sum(
        e["anatomy"] == "knee" for e in splits["val"]) == knee_train
    assert data_lib.make_manifest(volumes, config, 0, release) == manifest  # deterministic
    assert data_lib.make_manifest(volumes, config, 1, release)["splits"] != splits


def test_rule_is_read_from_the_paths_without_a_root(release):
    volumes = data_lib.scan(release)
    manifest = data_lib.make_manifest(volumes, DataConfig(), seed=0)
    assert manifest["rule"] == "release"
    assert manifest["splits"] == data_lib.make_manifest(volumes, DataConfig(), 0,
                                                        release)["splits"]


def test_the_same_files_in_one_folder_split_at_random(release, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for folder in LAYOUT:
        for path in (release / folder).glob("*.h5"):
            shutil.copy2(path, flat / path.name)
    volumes = data_lib.scan(flat)
    for scale in SCALES.values():
        manifest = data_lib.make_manifest(volumes, scale.data, seed=0, data_root=flat)
        assert manifest["rule"] == "random"
        assert all(manifest["splits"][name] for name in data_lib.SPLITS), scale.name
        assert "outside_release_folders" not in manifest["left_out"]


def test_manifest_command_prints_the_rule(release, tmp_path, capsys):
    out = tmp_path / "release.json"
    assert main(["manifest", "--data-root", str(release), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^rule: release: fastMRI release folders", printed, re.M), printed
    assert "1 files outside the release folders (not read)" in printed
    manifest = data_lib.load_manifest(out)
    assert manifest["rule"] == "release"
    counts = data_lib.split_counts(manifest)
    assert re.search(rf"^brain_test\s+{counts['brain_test']['volumes']} volumes", printed, re.M)


def test_some_release_folders_are_not_enough(release, tmp_path, capsys):
    partial = tmp_path / "partial"
    for folder in ("brain_multicoil_train", "knee_multicoil_train"):
        shutil.copytree(release / folder, partial / folder)
    assert main(["manifest", "--data-root", str(partial), "--out",
                 str(tmp_path / "m.json"), "--scale", "smoke"]) == 0
    printed = capsys.readouterr().out
    assert "rule: random" in printed
    assert "note: brain_multicoil_train, knee_multicoil_train found, but the release rule " \
           "needs all four" in printed


def fake(brain: int, knee: int, slices: int = 3, prefix: str = "") -> list[dict]:
    vols = [{"path": f"{prefix}brain/file_brain_AXT2_{i}.h5", "anatomy": "brain"}
            for i in range(brain)]
    vols += [{"path": f"{prefix}knee/file{i}.h5", "anatomy": "knee"} for i in range(knee)]
    for v in vols:
        v.update(slices=slices, fingerprint=f"{slices}:{v['path']}")
    return vols


@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("brain,knee", [(30, 6), (12, 12), (3, 2), (2, 3), (40, 4)])
def test_a_few_dozen_files_split_at_every_profile(scale, brain, knee):
    config = SCALES[scale].data
    manifest = data_lib.make_manifest(fake(brain, knee), config, seed=0)
    counts = data_lib.split_counts(manifest)
    assert all(c["volumes"] >= 1 for c in counts.values()), counts
    assert counts["brain_test"]["volumes"] <= config.test_volumes
    assert counts["knee_test"]["volumes"] <= config.test_volumes
    assert counts["val"]["volumes"] <= 2 * config.val_volumes
    used = counts["retain"]["volumes"] + counts["brain_test"]["volumes"] + sum(
        e["anatomy"] == "brain" for e in manifest["splits"]["val"])
    assert used == brain


def test_held_out_sizes_are_fractions_capped_by_the_targets():
    assert split_lib.held_out_sizes(180, 20, 40) == (20, 40)  # default knees: the targets
    assert split_lib.held_out_sizes(16, 2, 3) == (2, 3)  # smoke knees: the targets
    assert split_lib.held_out_sizes(6, 100, 100) == (1, 1)  # the sample of 6 knees
    assert split_lib.held_out_sizes(40, 100, 100) == (6, 10)
    assert split_lib.held_out_sizes(3, 20, 40) == (1, 1)
    assert split_lib.held_out_sizes(2, 20, 40) == (0, 1)  # the pool and the test set first
    assert split_lib.held_out_sizes(1, 20, 40) == (0, 0)


@pytest.mark.parametrize("brain,knee,empty", [(1, 10, "brain_test"), (10, 1, "knee_test"),
                                              (2, 2, "val")])
def test_refused_only_when_a_split_would_be_empty_with_the_counts(brain, knee, empty):
    with pytest.raises(data_lib.DataError) as err:
        data_lib.make_manifest(fake(brain, knee), DataConfig(), seed=0)
    message = str(err.value)
    assert "\n" not in message
    assert f"found {brain} brain AXT2 and {knee} knee volumes" in message
    assert f"the {empty} split" in message and "would be empty" in message


def test_release_with_an_empty_val_folder_is_refused_with_the_counts():
    volumes = fake(6, 5, prefix="brain_multicoil_train/")[:6] + \
        fake(0, 5, prefix="knee_multicoil_train/") + fake(0, 2, prefix="knee_multicoil_val/")
    with pytest.raises(data_lib.DataError, match=r"found 6 brain AXT2 and 5 knee volumes in "
                                                 r"the \*_train folders, 0 and 2 in the \*_val "
                                                 r"folders, so the brain_test split would be "
                                                 r"empty"):
        data_lib.make_manifest(volumes, DataConfig(), seed=0, rule="release")


def old_split(volumes, config, seed):
    """The split as it was made before sizes adapted (fixed counts), for comparison."""
    rng = np.random.default_rng(seed)
    brain = [v for v in volumes if v["anatomy"] == "brain"]
    knee = [v for v in volumes if v["anatomy"] == "knee"]
    n_val, n_test = config.val_volumes, config.test_volumes
    brain = [brain[i] for i in rng.permutation(len(brain))]
    knee = [knee[i] for i in rng.permutation(len(knee))]
    retain = brain[n_val + n_test:]
    spare = knee[n_val + n_test:]
    n_forget = split_lib._take_forget(spare, config.forget_ratio * sum(v["slices"]
                                                                       for v in retain))
    splits = {"retain": retain, "forget": spare[:n_forget], "val": brain[:n_val] + knee[:n_val],
              "brain_test": brain[n_val:n_val + n_test], "knee_test": knee[n_val:n_val + n_test]}
    return {name: sorted(v["path"] for v in vols) for name, vols in splits.items()}


@pytest.mark.parametrize("scale", ["smoke", "default"])
@pytest.mark.parametrize("seed", [0, 1, 4])
def test_the_embedded_sets_keep_the_split_they_always_had(scale, seed):
    """Sizes at the profile's counts reach the targets: the same volumes in every split, so
    the manifest hash, and with it every stored result, stays as it was. (The paper profile's
    synthetic set, 300 knee volumes for 100 + 100 held out, now keeps more for its pool.)"""
    config = SCALES[scale].data
    volumes = fake(config.brain_volumes, config.knee_volumes, config.slices_per_volume)
    manifest = data_lib.make_manifest(volumes, config, seed)
    assert manifest["rule"] == "random"
    assert {name: [e["path"] for e in entries] for name, entries in
            manifest["splits"].items()} == old_split(volumes, config, seed)


def test_the_embedded_smoke_files_keep_their_split(smoke_data, smoke):
    """The embedded smoke set's split under seed 0, as stored results know it."""
    manifest = data_lib.make_manifest(data_lib.scan(smoke_data), smoke.data, 0, smoke_data)
    expected = old_split(data_lib.scan(smoke_data), smoke.data, 0)
    assert {name: [e["path"] for e in entries] for name, entries in
            manifest["splits"].items()} == expected


def test_a_lab_trains_on_a_release_root_at_the_paper_profile_sizes(release, tmp_path):
    """A sample in the release's layout opens a Lab even at the paper profile's split
    targets (100 validation and test volumes): the split adapts instead of refusing."""
    from erase.runs.lab import Lab

    lab = Lab(scale="smoke", data_root=release, results_dir=tmp_path / "results",
              progress=False)
    paper = data_lib.make_manifest(data_lib.scan(release), SCALES["paper"].data, 0, release)
    assert lab.manifest["rule"] == paper["rule"] == "release"
    assert len(lab.dataset("brain_test")) == 2 * len(lab.manifest["splits"]["brain_test"])
    assert not any((tmp_path / "results").rglob("*AXFLAIR*"))


def test_a_second_scan_reads_no_file_again_until_one_changes(tmp_path, monkeypatch):
    """A Lab per seed and per protocol flip scans the same files; this process reads each
    settled file once, and a file that changes is read again (its new fingerprint seen)."""
    import h5py

    root = tmp_path / "data"
    synthesize(root, get_scale("smoke").data, 0)
    old = time.time() - 60  # settled: written a minute ago
    for p in root.rglob("*.h5"):
        os.utime(p, (old, old))
    first = data_lib.scan(root)

    def no_open(*args, **kwargs):
        raise AssertionError("a settled, unchanged file was opened again")

    monkeypatch.setattr(h5py, "File", no_open)
    assert data_lib.scan(root) == first
    monkeypatch.undo()

    changed = root / first[0]["path"]
    with h5py.File(changed, "r+") as f:
        f["kspace"][0] = f["kspace"][0] * 2
        f.attrs["max"] = float(f.attrs["max"]) + 1
    again = {v["path"]: v for v in data_lib.scan(root)}
    assert again[first[0]["path"]]["fingerprint"] != first[0]["fingerprint"]
    assert [v for v in first[1:]] == [again[v["path"]] for v in first[1:]]
