"""Data: synthetic fastMRI files, fastMRI's own reader, the mask, and the split."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from erase import data as data_lib
from erase.config import ConfigError, DataConfig, get_scale
from erase.data.synthetic import STAMP, synthesize
from erase.io import write_json


def h5_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*.h5"))


def read_all(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {"kspace": f["kspace"][()], "target": f["reconstruction_rss"][()],
                "header": f["ismrmrd_header"][()], "attrs": dict(f.attrs)}


# ------------------------------------------------------------------ synthetic files


def test_same_seed_and_parameters_give_byte_identical_files(tmp_path, smoke, smoke_data):
    other = tmp_path / "again"
    synthesize(other, smoke.data, 0)
    a, b = h5_files(smoke_data), h5_files(other)
    assert [p.relative_to(smoke_data) for p in a] == [p.relative_to(other) for p in b]
    assert len(a) == smoke.data.brain_volumes + smoke.data.knee_volumes
    for pa, pb in zip(a, b):
        fa, fb = read_all(pa), read_all(pb)
        assert fa["kspace"].tobytes() == fb["kspace"].tobytes(), pa.name
        assert fa["target"].tobytes() == fb["target"].tobytes(), pa.name
        assert fa["header"] == fb["header"]
        assert fa["attrs"] == fb["attrs"]


def test_different_seed_gives_different_data(tmp_path, smoke, smoke_data):
    other = tmp_path / "seed1"
    synthesize(other, smoke.data, 1)
    for pa, pb in zip(h5_files(smoke_data), h5_files(other)):
        fa, fb = read_all(pa), read_all(pb)
        assert fa["kspace"].shape == fb["kspace"].shape
        assert not np.array_equal(fa["kspace"], fb["kspace"]), pa.name
        assert not np.array_equal(fa["target"], fb["target"]), pa.name


def test_files_have_the_fastmri_multicoil_layout(smoke, smoke_data):
    c = smoke.data
    for path in h5_files(smoke_data):
        with h5py.File(path, "r") as f:
            kspace, target = f["kspace"], f["reconstruction_rss"]
            assert kspace.dtype == np.complex64
            assert kspace.shape == (c.slices_per_volume, c.coils, c.image_size, c.image_size)
            assert target.dtype == np.float32
            assert target.shape == (c.slices_per_volume, c.image_size, c.image_size)
            t = target[()]
            assert set(f.attrs) >= {"acquisition", "max", "norm", "patient_id"}
            expected = "AXT2" if path.parent.name == "brain" else "CORPD_FBK"
            assert f.attrs["acquisition"] == expected
            assert f.attrs["max"] == pytest.approx(float(t.max()), rel=1e-6)
            assert f.attrs["norm"] == pytest.approx(float(np.linalg.norm(t)), rel=1e-5)
            assert str(f.attrs["patient_id"])
            # the target is the RSS of the fully sampled coil images (fastMRI's definition)
            coil_images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(
                kspace[()], axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
            rss = np.sqrt((np.abs(coil_images) ** 2).sum(axis=1))
            np.testing.assert_allclose(rss, t, rtol=1e-3, atol=1e-3 * float(t.max()))


def test_fastmri_slice_dataset_reads_the_files(smoke, smoke_data):
    from fastmri.data import SliceDataset
    from fastmri.data.transforms import VarNetDataTransform

    c = smoke.data
    dataset = SliceDataset(smoke_data / "brain", "multicoil",
                           transform=VarNetDataTransform(data_lib.mask_func(c), use_seed=True))
    assert len(dataset) == c.brain_volumes * c.slices_per_volume
    _, _, metadata = dataset.raw_samples[0]
    assert metadata["recon_size"] == (c.image_size, c.image_size, 1)
    assert metadata["encoding_size"] == (c.image_size, c.image_size, 1)
    assert (metadata["padding_left"], metadata["padding_right"]) == (0, c.image_size)
    sample = dataset[0]
    assert tuple(sample.masked_kspace.shape) == (c.coils, c.image_size, c.image_size, 2)
    assert tuple(sample.target.shape) == (c.image_size, c.image_size)
    with h5py.File(smoke_data / "brain" / sample.fname, "r") as f:
        assert sample.max_value == pytest.approx(float(f.attrs["max"]))
        np.testing.assert_array_equal(sample.target.numpy(),
                                      f["reconstruction_rss"][sample.slice_num])
    # use_seed=True: the mask of a file is the same every time it is read
    again = dataset[0]
    assert np.array_equal(sample.mask.numpy(), again.mask.numpy())


def sampled_columns(mask) -> np.ndarray:
    return np.flatnonzero(np.asarray(mask).reshape(-1))


def test_paper_profile_undersamples_as_the_paper():
    paper = get_scale("paper").data
    assert (paper.acceleration, paper.center_fraction) == (8, 0.04)
    # the public code's mask: fastMRI's EquiSpacedMaskFunc, for every profile
    assert {get_scale(s).data.mask for s in ("smoke", "default", "paper")} == {"equispaced"}


def centre_block(cols: int, low: int) -> set[int]:
    start = (cols - low + 1) // 2
    return set(range(start, start + low))


@pytest.mark.parametrize("scale,cols", [("paper", 320), ("paper", 368), ("default", 64),
                                        ("default", 32), ("smoke", 32)])
def test_equispaced_mask_is_a_line_every_acceleration_columns_plus_the_centre(scale, cols):
    """EquiSpacedMaskFunc (the public code): lines exactly every ``acceleration`` columns from
    a random offset, plus the fully sampled centre; the offset is drawn from the seed."""
    config = get_scale(scale).data
    acc, fraction = config.acceleration, config.center_fraction
    func = data_lib.mask_func(config)
    offsets = set()
    for seed in range(12):
        mask, low = func((1, 4, cols, 2), seed=(seed, 2, 3))
        columns = set(sampled_columns(mask).tolist())
        assert int(low) == round(cols * fraction)
        centre = centre_block(cols, int(low))
        assert centre <= columns  # the centre block of low frequencies is fully sampled
        outer = columns - centre
        matches = [o for o in range(acc) if outer == set(range(o, cols, acc)) - centre]
        assert len(matches) == 1, (seed, sorted(outer))  # exactly equispaced from one offset
        offsets.add(matches[0])
        # the same seed gives the same mask
        again, _ = func((1, 4, cols, 2), seed=(seed, 2, 3))
        assert torch.equal(mask, again)
    assert len(offsets) > 1, "the offset never changed with the seed"


@pytest.mark.parametrize("scale,cols", [("paper", 320), ("paper", 368), ("default", 64),
                                        ("smoke", 32)])
def test_equispaced_fraction_mask_keeps_one_in_acceleration_columns(scale, cols):
    """The ``equispaced_fraction`` alternative (fastMRI's challenge masks): the centre counts
    towards the acceleration, the outer lines are spread accordingly."""
    config = replace(get_scale(scale).data, mask="equispaced_fraction")
    acc, fraction = config.acceleration, config.center_fraction
    mask, low = data_lib.mask_func(config)((1, 4, cols, 2), seed=(1, 2, 3))
    columns = sampled_columns(mask)
    assert int(low) == round(cols * fraction)
    start = (cols - int(low) + 1) // 2
    assert set(range(start, start + int(low))) <= set(columns)
    # the whole mask keeps 1/acc of the columns (fastMRI's fraction-matching variant)
    assert abs(len(columns) - cols / acc) <= 2, (len(columns), cols / acc)
    # outside the centre the columns are equally spaced (rounded: gaps differ by at most 1)
    outer = [c for c in columns if not start <= c < start + int(low)]
    gaps = np.diff(outer)
    regular = gaps[gaps < np.median(gaps) * 1.5]  # drop the one jump across the centre
    assert regular.max() - regular.min() <= 1
    assert np.median(gaps) > acc  # sparser than 1/acc outside the centre, which makes up for it


def test_unknown_mask_is_refused():
    with pytest.raises(ConfigError, match="unknown mask 'radial': choose one of equispaced, "
                                          "equispaced_fraction"):
        data_lib.mask_func(replace(DataConfig(), mask="radial"))


def test_loaded_split_uses_the_configured_mask(samples, smoke):
    for split in (samples["retain"], samples["forget"]):
        for i in range(len(split)):
            sample = split[i]
            cols = sample.masked_kspace.shape[-2]
            # the evaluation mask is fastMRI's, seeded by the file name (one mask per volume)
            expected, low = data_lib.mask_func(smoke.data)(
                tuple(sample.masked_kspace.shape), seed=tuple(map(ord, sample.fname)))
            assert torch.equal(sample.mask, expected.to(torch.bool)), sample.fname
            assert int(sample.num_low_frequencies) == int(low)
            columns = sampled_columns(sample.mask)
            # unsampled columns are zero in the masked k-space, sampled ones are not
            unsampled = np.setdiff1d(np.arange(cols), columns)
            assert sample.masked_kspace[:, :, unsampled].abs().max() == 0
            assert sample.masked_kspace[:, :, columns].abs().amax(dim=(0, 1, 3)).min() > 0


def test_split_select_join_and_fname(samples):
    """Dr' is ``select``, Dr + Df is ``join``: the same slices, in the order asked for."""
    retain, forget = samples["retain"], samples["forget"]
    names = [retain.fname(i) for i in range(len(retain))]
    assert names == [retain[i].fname for i in range(len(retain))]
    assert len(set(names)) == len(names)  # one slice per volume at smoke scale
    picked = retain.select([4, 0, 2])
    assert len(picked) == 3 and [picked.fname(i) for i in range(3)] == [names[4], names[0],
                                                                       names[2]]
    for j, i in enumerate([4, 0, 2]):
        assert torch.equal(picked[j].masked_kspace, retain[i].masked_kspace)
        assert torch.equal(picked.masked(j, (7, j)).masked_kspace,
                           retain.masked(i, (7, j)).masked_kspace)
    both = retain.join(forget)
    assert len(both) == len(retain) + len(forget)
    assert [both.fname(i) for i in range(len(both))] == \
        names + [forget.fname(i) for i in range(len(forget))]
    assert torch.equal(both[len(retain)].target, forget[0].target)


def test_lazy_splits_give_what_in_memory_splits_give(smoke_data, smoke, samples, tmp_path):
    """Real data too large to hold is read lazily; select and join (also of a lazy Dr with an
    in-memory Df, when only the smaller split fits) give the same slices, names and masks."""
    manifest = data_lib.make_manifest(data_lib.scan(smoke_data), smoke.data, 0)
    lazy = {split: data_lib.load_split(manifest, split, smoke_data, smoke.data, tmp_path,
                                       in_memory_limit_mb=0) for split in ("retain", "forget")}
    assert not lazy["retain"].in_memory and samples["retain"].in_memory
    mixed = [(lazy["retain"], samples["forget"]), (samples["retain"], lazy["forget"]),
             (lazy["retain"], lazy["forget"])]
    expected = samples["retain"].join(samples["forget"])
    for retain, forget in mixed:
        for joined in (retain.join(forget), retain.select([2, 0]).join(forget.select([1]))):
            reference = expected if len(joined) == len(expected) else \
                samples["retain"].select([2, 0]).join(samples["forget"].select([1]))
            assert len(joined) == len(reference)
            assert [joined.fname(i) for i in range(len(joined))] == \
                [reference.fname(i) for i in range(len(reference))]
            for i in range(len(joined)):
                assert torch.equal(joined[i].masked_kspace, reference[i].masked_kspace)
                assert torch.equal(joined.masked(i, (3, i)).mask, reference.masked(i, (3, i)).mask)


def test_second_synthesize_reuses_the_files(tmp_path):
    config = DataConfig(image_size=16, coils=2, brain_volumes=2, knee_volumes=1,
                        slices_per_volume=1)
    out = tmp_path / "data"
    first = synthesize(out, config, 0)
    assert first["reused"] is False
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    second = synthesize(out, config, 0)
    assert second["reused"] is True
    assert second["stamp"] == first["stamp"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps


@pytest.mark.parametrize("change", [{"noise_level": 0.02}, {"coils": 3}, {"seed": 1}])
def test_changed_parameters_regenerate(tmp_path, change):
    config = DataConfig(image_size=16, coils=2, brain_volumes=2, knee_volumes=1,
                        slices_per_volume=1)
    out = tmp_path / "data"
    synthesize(out, config, 0)
    before = read_all(h5_files(out)[0])
    seed = change.pop("seed", 0)
    result = synthesize(out, replace(config, **change), seed)
    assert result["reused"] is False
    assert json.loads((out / STAMP).read_text())["stamp"] == result["stamp"]
    after = read_all(h5_files(out)[0])
    assert not np.array_equal(before["kspace"], after["kspace"]) or \
        before["kspace"].shape != after["kspace"].shape
    assert not list(tmp_path.glob(".*partial*")), "a partial directory was left behind"


def test_synthesize_refuses_a_foreign_non_empty_directory(tmp_path, smoke):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not empty"):
        synthesize(out, smoke.data, 0)
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert (out / "thesis.tex").read_text() == "precious"


# ------------------------------------------------------------------ the split


def fake_volumes(brain=36, knee=20, other=0, slices=6, rng=None) -> list[dict]:
    """Volume descriptions as ``scan`` gives them; no files needed for ``make_manifest``."""
    def n():
        return slices if rng is None else int(rng.integers(8, 20))

    vols = [{"path": f"brain/file_brain_AXT2_{i}.h5", "acquisition": "AXT2", "slices": n()}
            for i in range(brain)]
    vols += [{"path": f"knee/file{i}.h5", "acquisition": "CORPD_FBK", "slices": n()}
             for i in range(knee)]
    vols += [{"path": f"brain/file_brain_AXFLAIR_{i}.h5", "acquisition": "AXFLAIR", "slices": n()}
             for i in range(other)]
    for v in vols:
        v["anatomy"] = data_lib.anatomy_of(v["acquisition"])
        v["fingerprint"] = f"{v['slices']}:{hash(v['path']) & 0xffff:x}"
    return vols


def check_split(manifest: dict, volumes: list[dict], config: DataConfig) -> None:
    splits = manifest["splits"]
    assert set(splits) == set(data_lib.SPLITS)
    where: dict[str, str] = {}
    for name, entries in splits.items():
        for e in entries:
            assert e["path"] not in where, f"{e['path']} in {where.get(e['path'])} and {name}"
            where[e["path"]] = name
    by_path = {v["path"]: v for v in volumes}
    for name, entries in splits.items():
        for e in entries:  # a volume enters whole: all its slices
            assert e["slices"] == by_path[e["path"]]["slices"]
    anat = lambda name: {e["anatomy"] for e in splits[name]}  # noqa: E731
    assert anat("retain") == {"brain"} and anat("brain_test") == {"brain"}
    assert anat("forget") == {"knee"} and anat("knee_test") == {"knee"}
    assert anat("val") == {"brain", "knee"}
    assert len(splits["brain_test"]) == len(splits["knee_test"]) == config.test_volumes
    assert len(splits["val"]) == 2 * config.val_volumes
    brain = [v for v in volumes if v["anatomy"] == "brain"]
    knee = [v for v in volumes if v["anatomy"] == "knee"]
    assert {v["path"] for v in brain} <= set(where)  # every brain volume is used
    used_knee = sum(where.get(v["path"]) is not None for v in knee)
    assert used_knee + manifest["left_out"]["unused_knee"] == len(knee)
    # forget ~ forget_ratio x retain: the closest a whole number of knee volumes can get
    counts = data_lib.split_counts(manifest)
    target = config.forget_ratio * counts["retain"]["slices"]
    largest = max(v["slices"] for v in knee)
    assert abs(counts["forget"]["slices"] - target) <= largest / 2 + 1e-9


def test_default_split_invariants():
    config = DataConfig()
    volumes = fake_volumes(config.brain_volumes, config.knee_volumes,
                           slices=config.slices_per_volume)
    manifest = data_lib.make_manifest(volumes, config, seed=0)
    check_split(manifest, volumes, config)
    counts = data_lib.split_counts(manifest)
    ratio = counts["forget"]["slices"] / counts["retain"]["slices"]
    assert 0.07 <= ratio <= 0.13, ratio


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_invariants_with_uneven_volumes(seed):
    config = DataConfig(val_volumes=10, test_volumes=20)
    volumes = fake_volumes(brain=300, knee=120, other=7, rng=np.random.default_rng(seed))
    manifest = data_lib.make_manifest(volumes, config, seed=seed)
    check_split(manifest, volumes, config)
    counts = data_lib.split_counts(manifest)
    assert abs(counts["forget"]["slices"] / counts["retain"]["slices"] - 0.1) < 0.01


def test_same_seed_same_manifest_and_different_seed_different():
    config = DataConfig()
    volumes = fake_volumes(config.brain_volumes, config.knee_volumes)
    a = data_lib.make_manifest(volumes, config, seed=0)
    c = data_lib.make_manifest(volumes, config, seed=1)
    assert a == data_lib.make_manifest(volumes, config, seed=0)
    assert data_lib.manifest_hash(a) == data_lib.manifest_hash(
        data_lib.make_manifest(volumes, config, 0))
    assert a["splits"] != c["splits"]
    assert data_lib.manifest_hash(a) != data_lib.manifest_hash(c)


def test_other_contrasts_are_left_out_and_counted():
    config = DataConfig()
    volumes = fake_volumes(config.brain_volumes, config.knee_volumes, other=5)
    manifest = data_lib.make_manifest(volumes, config, seed=0)
    used = {e["path"] for entries in manifest["splits"].values() for e in entries}
    assert not any("AXFLAIR" in p for p in used)
    assert manifest["left_out"]["other_contrasts"] == 5
    assert data_lib.anatomy_of("AXFLAIR") == "other"
    assert data_lib.anatomy_of("AXT2") == "brain"
    assert data_lib.anatomy_of("CORPD_FBK") == data_lib.anatomy_of("CORPDFS_FBK") == "knee"


def test_too_few_volumes_is_refused_with_the_numbers():
    """Sizes adapt to the data (tests/test_real_data.py); only an empty split is refused."""
    config = DataConfig()
    with pytest.raises(data_lib.DataError, match=f"found 1 brain AXT2 and {config.knee_volumes} "
                                                 "knee volumes, so the brain_test split would "
                                                 "be empty"):
        data_lib.make_manifest(fake_volumes(brain=1, knee=config.knee_volumes), config, seed=0)
    with pytest.raises(data_lib.DataError, match="knee_test split would be empty"):
        data_lib.make_manifest(fake_volumes(brain=config.brain_volumes, knee=1), config, seed=0)


def test_lab_split_is_by_volume_in_the_loaded_data(lab):
    """Every slice of a volume lands in the one split that names the volume."""
    seen: dict[str, str] = {}
    for split in data_lib.SPLITS:
        dataset = lab.dataset(split)
        fnames = [dataset.fname(i) for i in range(len(dataset))]
        assert fnames == [dataset[i].fname for i in range(len(dataset))]
        expected = {Path(e["path"]).name: e["slices"] for e in lab.manifest["splits"][split]}
        assert {f: fnames.count(f) for f in set(fnames)} == expected, split
        for f in set(fnames):
            assert f not in seen, f"{f} in {seen.get(f)} and {split}"
            seen[f] = split


def test_saved_manifest_gives_the_same_split(lab, tmp_path):
    from erase.runs.lab import Lab

    path = tmp_path / "manifest.json"
    write_json(path, lab.manifest)
    # another seed would split differently; the saved manifest wins
    again = Lab(scale="smoke", results_dir=lab.results, manifest=path, seed=1)
    assert again.manifest["splits"] == lab.manifest["splits"]
    assert again.manifest_key == lab.manifest_key
    fresh = Lab(scale="smoke", results_dir=lab.results, seed=1)
    assert fresh.manifest_key != lab.manifest_key


def test_manifest_with_a_changed_file_is_refused(lab, tmp_path):
    manifest = json.loads(json.dumps(lab.manifest))
    manifest["splits"]["retain"][0]["fingerprint"] = "0:deadbeef"
    with pytest.raises(data_lib.DataError, match="changed since the manifest"):
        data_lib.verify_manifest(manifest, lab.data_root)
    manifest["splits"]["retain"][0]["path"] = "brain/missing.h5"
    with pytest.raises(data_lib.DataError, match="does not exist"):
        data_lib.verify_manifest(manifest, lab.data_root)


def test_resolve_refuses_paths_outside_the_data_root(tmp_path):
    root = tmp_path / "root"
    (root / "brain").mkdir(parents=True)
    (root / "brain" / "a.h5").write_bytes(b"")
    (tmp_path / "secret.h5").write_bytes(b"")
    os.symlink(tmp_path / "secret.h5", root / "brain" / "link.h5")
    assert data_lib.resolve(root, "brain/a.h5") == (root / "brain" / "a.h5").resolve()
    for bad in ("../secret.h5", "brain/../../secret.h5", str(tmp_path / "secret.h5"),
                "brain/link.h5"):
        with pytest.raises(data_lib.DataError, match="outside the data root"):
            data_lib.resolve(root, bad)


def test_retain_subset_is_a_seeded_fraction():
    a = data_lib.retain_subset(200, 0.1, seed=0)
    assert a == data_lib.retain_subset(200, 0.1, seed=0)
    assert a != data_lib.retain_subset(200, 0.1, seed=1)
    assert len(a) == 20 and len(set(a)) == 20 and a == sorted(a)
    assert all(0 <= i < 200 for i in a)
    assert data_lib.retain_subset(200, 1.0, seed=0) == list(range(200))
    assert len(data_lib.retain_subset(5, 0.01, seed=0)) == 1  # at least one slice
