"""Bad data, as a user would hand it over: one clear message, exit 2, nothing written.

Each broken data root is a copy of one smoke synthetic set with one thing broken (h5py). The
CLI is driven in-process (``erase.cli.main``), which is what ``python -m erase`` runs.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from erase import cli, data
from erase.config import get_scale
from erase.data.synthetic import STAMP, synthesize

BRAIN = "brain/file_brain_AXT2_200_6000000.h5"
SMOKE = get_scale("smoke").data
SLICES = SMOKE.slices_per_volume


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "smoke"
    synthesize(root, get_scale("smoke").data, 0)
    (root / STAMP).unlink()  # a plain directory of fastMRI files, as a user's would be
    return root


@pytest.fixture
def copy(base, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(base, root)
    return root


def erase(capsys, *argv) -> tuple[int, str]:
    """Run the CLI; return its exit code and its stderr (which must be one error line)."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    if code:
        assert err.count("\n") == 0 and err.startswith("erase: error: "), err
        assert "Traceback" not in err
    return code, err


def nothing_written(results: Path, root: Path | None = None) -> None:
    assert not results.exists(), sorted(p.name for p in results.rglob("*"))
    if root is not None:
        assert not (root / "erase-manifest.json").exists()


def replace_dataset(path: Path, name: str, value) -> None:
    with h5py.File(path, "a") as f:
        if name in f:
            del f[name]
        if value is not None:
            f[name] = value


def read(path: Path, name: str):
    with h5py.File(path, "r") as f:
        return f[name][()]


def truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


NS = "http://www.ismrm.org/ISMRMRD"
BROKEN = {
    # name: (how to break the copy, what the message must say)
    "not-hdf5": (lambda r, f: f.write_text("this is not HDF5"),
                 "not a readable HDF5 file"),
    "truncated": (lambda r, f: truncate(f), "truncated file"),
    "no-kspace": (lambda r, f: replace_dataset(f, "kspace", None), "no 'kspace' dataset"),
    "kspace-rank": (lambda r, f: replace_dataset(f, "kspace", read(f, "kspace")[:, 0]),
                    f"kspace has shape ({SLICES}, 32, 32)"),
    "kspace-dtype": (lambda r, f: replace_dataset(f, "kspace", np.abs(read(f, "kspace"))),
                     "dtype float32; expected complex"),
    "no-header": (lambda r, f: replace_dataset(f, "ismrmrd_header", None),
                  "no 'ismrmrd_header'"),
    "header-not-xml": (lambda r, f: replace_dataset(f, "ismrmrd_header", b"<ismrmrdHeader><oo"),
                       "malformed ismrmrd_header (not valid XML"),
    "header-no-sizes": (lambda r, f: replace_dataset(
        f, "ismrmrd_header", f'<ismrmrdHeader xmlns="{NS}"><encoding/></ismrmrdHeader>'.encode()),
        "encoding/encodedSpace/matrixSize/x is missing"),
    "header-numbers": (lambda r, f: replace_dataset(f, "ismrmrd_header", np.arange(3)),
                       "not XML text"),
    "target-shape": (lambda r, f: replace_dataset(f, "reconstruction_rss",
                                                  read(f, "reconstruction_rss")[:, :16]),
                     f"reconstruction_rss has shape ({SLICES}, 16, 32) but kspace has {SLICES} "
                     "slices and the header's recon matrix is (32, 32)"),
    "brain-no-knee": (lambda r, f: shutil.rmtree(r / "knee"),
                      "brain AXT2 and 0 knee volumes"),
    "knee-no-brain": (lambda r, f: shutil.rmtree(r / "brain"),
                      "found 0 brain AXT2 and"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_data_root(case, copy, tmp_path, capsys):
    breaks, message = BROKEN[case]
    breaks(copy, copy / BRAIN)
    results = tmp_path / "results"
    code, err = erase(capsys, "train", "--scale", "smoke", "--data-root", copy, "--results",
                      results)
    assert code == 2 and message in err, err
    if case not in ("brain-no-knee", "knee-no-brain"):
        assert str(copy / BRAIN) in err, "the message must name the file"
    nothing_written(results, copy)
    code, err2 = erase(capsys, "manifest", "--scale", "smoke", "--data-root", copy)
    assert code == 2 and message in err2
    nothing_written(results, copy)
    print(f"{case}: {err}")


@pytest.mark.parametrize("case", ["missing", "empty", "file"])
def test_missing_or_empty_data_root(case, tmp_path, capsys):
    root = tmp_path / "fastmri"
    if case == "empty":
        root.mkdir()
    elif case == "file":
        root.write_text("")
    results = tmp_path / "results"
    code, err = erase(capsys, "train", "--scale", "smoke", "--data-root", root, "--results",
                      results)
    expected = "holds no .h5 files" if case == "empty" else "does not exist or is not a directory"
    assert code == 2 and expected in err and str(root) in err, err
    nothing_written(results)
    print(f"{case}: {err}")


# ------------------------------------------------------------------ manifests


@pytest.fixture
def manifest(copy, tmp_path, capsys) -> Path:
    out = tmp_path / "split.json"
    code, _ = erase(capsys, "manifest", "--scale", "smoke", "--data-root", copy, "--out", out)
    assert code == 0 and out.is_file()
    return out


def train_with(capsys, manifest, copy, results) -> tuple[int, str]:
    return erase(capsys, "train", "--scale", "smoke", "--data-root", copy, "--manifest",
                 manifest, "--results", results)


def first_retain(manifest: Path) -> str:
    return json.loads(manifest.read_text())["splits"]["retain"][0]["path"]


def test_manifest_names_a_file_that_no_longer_exists(manifest, copy, tmp_path, capsys):
    gone = first_retain(manifest)
    (copy / gone).unlink()
    code, err = train_with(capsys, manifest, copy, tmp_path / "results")
    assert code == 2 and f"manifest names {gone} (retain)" in err and "does not exist" in err
    assert "rebuild the manifest" in err
    nothing_written(tmp_path / "results")
    print(err)


def test_manifest_names_a_file_whose_content_changed(manifest, copy, tmp_path, capsys):
    changed = copy / first_retain(manifest)
    size = changed.stat().st_size
    with h5py.File(changed, "a") as f:  # same size, different bytes
        f["kspace"][0, 0, 0, 0] = f["kspace"][0, 0, 0, 0] + 1
    assert changed.stat().st_size == size
    code, err = train_with(capsys, manifest, copy, tmp_path / "results")
    assert code == 2 and "changed since the manifest was made" in err and str(changed) in err
    nothing_written(tmp_path / "results")
    print(err)


def edit_first_retain_path(manifest: Path, path: str) -> None:
    content = json.loads(manifest.read_text())
    content["splits"]["retain"][0]["path"] = path
    manifest.write_text(json.dumps(content))


@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_manifest_path_escaping_the_data_root_is_refused(how, manifest, copy, tmp_path, capsys):
    outside = tmp_path / "outside.h5"
    shutil.copy(copy / first_retain(manifest), outside)  # a real file, same fingerprint
    path = "../outside.h5" if how == "dotdot" else str(outside)
    edit_first_retain_path(manifest, path)
    code, err = train_with(capsys, manifest, copy, tmp_path / "results")
    assert code == 2 and f"manifest path {path!r} points outside the data root" in err, err
    assert "refusing to read it" in err
    nothing_written(tmp_path / "results")
    with pytest.raises(data.DataError, match="points outside the data root"):
        data.resolve(copy, path)
    print(f"{how}: {err}")


def test_symlink_pointing_out_of_the_data_root_is_refused(manifest, copy, tmp_path, capsys):
    inside = copy / first_retain(manifest)
    outside = tmp_path / "elsewhere.h5"
    shutil.move(inside, outside)
    inside.symlink_to(outside)  # same bytes, but it lives outside the root
    code, err = train_with(capsys, manifest, copy, tmp_path / "results")
    assert code == 2 and "points outside the data root" in err, err
    nothing_written(tmp_path / "results")
    # scanning the data root (no manifest) refuses the link as well
    code, err2 = erase(capsys, "train", "--scale", "smoke", "--data-root", copy, "--results",
                       tmp_path / "results")
    assert code == 2 and f"{inside} links to {outside}, outside the data root" in err2, err2
    nothing_written(tmp_path / "results")
    # a link that stays inside the root is fine
    target = copy / "knee" / "file1000000.h5"
    (copy / "alias.h5").symlink_to(target)
    assert data.resolve(copy, "alias.h5") == target.resolve()
    print(err)
    print(err2)


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot be read as JSON"),
    ('{"splits": {}}', "is not an erase manifest"),
    (None, "is not {path, slices, fingerprint, anatomy}"),
])
def test_malformed_manifest(content, message, manifest, copy, tmp_path, capsys):
    if content is None:
        edited = json.loads(manifest.read_text())
        del edited["splits"]["forget"][0]["fingerprint"]
        content = json.dumps(edited)
    manifest.write_text(content)
    code, err = train_with(capsys, manifest, copy, tmp_path / "results")
    assert code == 2 and message in err and str(manifest) in err, err
    nothing_written(tmp_path / "results")


def test_missing_manifest_file(copy, tmp_path, capsys):
    code, err = train_with(capsys, tmp_path / "nope.json", copy, tmp_path / "results")
    assert code == 2 and "nope.json does not exist" in err, err
    nothing_written(tmp_path / "results")


def test_intact_copy_is_accepted(copy, manifest):
    """The control: the same copy, unbroken, scans and verifies."""
    volumes = data.scan(copy)
    assert len(volumes) == SMOKE.brain_volumes + SMOKE.knee_volumes
    data.verify_manifest(data.load_manifest(manifest), copy)
