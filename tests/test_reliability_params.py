"""Bad parameters: one ``erase: error:`` line, exit 2, and nothing written (CLI and chapters)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from erase import cli
from erase.book import chapter
from erase.config import ConfigError

REPO = Path(__file__).resolve().parents[1]

CASES = {
    # name: (arguments, exact message after "erase: error: ")
    "unknown scale": (["train", "--scale", "bogus"],
                      "unknown scale 'bogus': choose one of smoke, default, paper"),
    "unknown model": (["train", "--scale", "smoke", "--model", "bogus"],
                      "unknown model 'bogus': choose one of oracle, original"),
    "unknown model (evaluate)": (["evaluate", "--scale", "smoke", "--model", "bogus"],
                                 "unknown model 'bogus': choose one of oracle, original, "
                                 "zero-filled"),
    "unknown arch": (["train", "--scale", "smoke", "--arch", "transformer"],
                     "unknown arch 'transformer': choose one of varnet, unet"),
    "unknown method": (["unlearn", "--scale", "smoke", "--method", "Bogus"],
                       "unknown method 'Bogus': choose one of Retrain, FT, Full FT, GA-l1, NL, "
                       "GA-l1-FT, NL-FT, SalUn, SSD, SCRUB, l1-sparse"),
    "unknown device": (["train", "--scale", "smoke", "--device", "tpu"],
                       "unknown device 'tpu': choose one of cpu, cuda"),
    "retain fraction 0": (["unlearn", "--scale", "smoke", "--method", "FT",
                           "--retain-fraction", "0"],
                          "retain fraction must be a number in (0, 1], got 0.0"),
    "retain fraction 1.5": (["unlearn", "--scale", "smoke", "--method", "FT",
                             "--retain-fraction", "1.5"],
                            "retain fraction must be a number in (0, 1], got 1.5"),
    "retain fraction negative": (["unlearn", "--scale", "smoke", "--method", "NL-FT",
                                  "--retain-fraction=-0.1"],
                                 "retain fraction must be a number in (0, 1], got -0.1"),
    "retain fraction text": (["unlearn", "--scale", "smoke", "--method", "NL-FT",
                              "--retain-fraction", "half"],
                             "retain fraction must be a number in (0, 1], got 'half'"),
    "gamma negative": (["unlearn", "--scale", "smoke", "--method", "GA-l1", "--gamma=-1e-7"],
                       "gamma must be a finite number >= 0.0, got -1e-07"),
    "gamma text": (["unlearn", "--scale", "smoke", "--method", "GA-l1", "--gamma", "small"],
                   "gamma must be a number, got 'small'"),
    "lambda negative": (["unlearn", "--scale", "smoke", "--method", "NL", "--lambda=-0.5"],
                        "lambda must be a finite number >= 0.0, got -0.5"),
    "lambda text": (["unlearn", "--scale", "smoke", "--method", "NL", "--lambda", "lots"],
                    "lambda must be a number, got 'lots'"),
    "lambda infinite": (["unlearn", "--scale", "smoke", "--method", "NL", "--lambda", "inf"],
                        "lambda must be a finite number >= 0.0, got inf"),
    "epochs negative": (["train", "--scale", "smoke", "--epochs=-2"],
                        "epochs must be at least 1, got -2"),
    "epochs zero": (["train", "--scale", "smoke", "--epochs", "0"],
                    "epochs must be at least 1, got 0"),
    "epochs text": (["train", "--scale", "smoke", "--epochs", "ten"],
                    "epochs must be an integer, got 'ten'"),
    "unlearn epochs fraction": (["unlearn", "--scale", "smoke", "--method", "NL-FT",
                                 "--unlearn-epochs", "0.5"],
                                "unlearn epochs (--unlearn-epochs) must be an integer, "
                                "got '0.5'"),
    "unlearn epochs zero": (["unlearn", "--scale", "smoke", "--method", "NL-FT",
                             "--unlearn-epochs", "0"],
                            "unlearn epochs (--unlearn-epochs) must be at least 1, got 0"),
    "unknown protocol": (["unlearn", "--scale", "smoke", "--method", "NL-FT", "--protocol",
                          "paper"], "unknown protocol 'paper': choose one of code, text"),
    "unknown protocol (train)": (["train", "--scale", "smoke", "--protocol", "Text"],
                                 "unknown protocol 'Text': choose one of code, text"),
    "noisy label": (["unlearn", "--scale", "smoke", "--method", "NL", "--noisy-label",
                     "uniform"],
                    "unknown noisy label 'uniform': choose one of half_normal, gaussian"),
    "steps": (["unlearn", "--scale", "smoke", "--method", "NL-FT", "--steps", "sideways"],
              "unknown steps 'sideways': choose one of alternating, paired"),
    "ga l1": (["unlearn", "--scale", "smoke", "--method", "GA-l1", "--protocol", "text",
               "--ga-l1", "paper"], "unknown ga l1 'paper': choose one of code, text"),
    "training masks": (["train", "--scale", "smoke", "--training-masks", "sometimes"],
                       "unknown training masks 'sometimes': choose one of random, fixed"),
    "lr schedule": (["evaluate", "--scale", "smoke", "--model", "oracle", "--lr-schedule",
                     "cosine"], "unknown lr schedule 'cosine': choose one of plateau, constant"),
    "seed fraction": (["train", "--scale", "smoke", "--seed", "1.5"],
                      "seed must be an integer, got '1.5'"),
    "seed text": (["unlearn", "--scale", "smoke", "--method", "FT", "--seed", "abc"],
                  "seed must be an integer, got 'abc'"),
    "seed (synth)": (["synth", "--scale", "smoke", "--seed", "x", "--out", "{tmp}/synth"],
                     "seed must be an integer, got 'x'"),
    "scale (synth)": (["synth", "--scale", "huge", "--out", "{tmp}/synth"],
                      "unknown scale 'huge': choose one of smoke, default, paper"),
}


def erase(capsys, argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("case", list(CASES))
def test_bad_parameter(case, tmp_path, capsys):
    argv, message = CASES[case]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    results = tmp_path / "results"
    if argv[0] != "synth":
        argv = argv + ["--results", str(results)]
    code, err = erase(capsys, argv)
    assert code == 2
    assert err == f"erase: error: {message}", err
    assert not results.exists() and not (tmp_path / "synth").exists(), "something was written"
    print(f"{case}: {err}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
@pytest.mark.parametrize("command", ["train", "book"])
def test_cuda_without_a_gpu(command, tmp_path, capsys):
    code, err = erase(capsys, [command, "--scale", "smoke", "--device", "cuda",
                               "--results", tmp_path / "results"])
    assert code == 2
    assert err.startswith("erase: error: device 'cuda' was asked for but no GPU is visible; "
                          "use "), err
    assert not (tmp_path / "results").exists()


# Tests run as root, and chmod does not stop root. A path below a regular file cannot be
# created by anyone, root included (ENOTDIR), so that is the unwritable directory used here.
@pytest.mark.parametrize("command", ["train", "unlearn", "synth", "manifest", "book"])
def test_results_directory_not_writable(command, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file")
    target = blocker / "sub"
    argv = {"train": ["train", "--scale", "smoke", "--results", target],
            "unlearn": ["unlearn", "--method", "NL-FT", "--scale", "smoke", "--results", target],
            "synth": ["synth", "--scale", "smoke", "--out", target],
            "manifest": ["manifest", "--data-root", tmp_path, "--out", target / "m.json"],
            "book": ["book", "--scale", "smoke", "--results", target]}
    code, err = erase(capsys, argv[command])
    assert code == 2, err
    what = {"train": "results directory", "unlearn": "results directory",
            "book": "results directory",
            "synth": "--out directory", "manifest": "manifest directory"}[command]
    where = target / "m.json" if command == "manifest" else target
    assert err.startswith(f"erase: error: {what} {where.parent if command == 'manifest' else where}"
                          f" is not writable ({blocker} is a file, not a directory)"), err
    assert blocker.read_text() == "a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"], "something was written"
    print(f"{command}: {err}")


def test_cli_subprocess_exit_code_and_no_traceback(tmp_path):
    """The real entry point: ``python -m erase unlearn --method Bogus`` writes nothing."""
    env = {k: v for k, v in os.environ.items() if k != "ERASE_RESULTS"}  # default: ./_output
    proc = subprocess.run([sys.executable, "-m", "erase", "unlearn", "--method", "Bogus",
                           "--scale", "smoke"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("erase: error: unknown method 'Bogus': choose one of "
                                   "Retrain, FT, Full FT, GA-l1, NL, GA-l1-FT, NL-FT, SalUn, SSD, "
                                   "SCRUB, l1-sparse")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == [], "nothing may be written (no _output either)"


# ------------------------------------------------------------------ chapters (papermill -p)


def namespace(results_dir, **extra) -> dict:
    return {"scale": "smoke", "device": "cpu", "data_root": None, "seed": 0,
            "results_dir": str(results_dir), **extra}


def test_chapter_unknown_parameter_names_the_known_ones(tmp_path):
    ns = namespace(tmp_path / "results", seeds=[0], bogus=1, Scale="smoke")
    with pytest.raises(ConfigError) as err:
        chapter.setup(ns, set(), own_parameters=("seeds", "workers"))
    assert str(err.value) == ("unknown parameter(s) Scale, bogus: this chapter knows scale, "
                              "device, data_root, seed, results_dir, protocol, switches, seeds, "
                              "workers")
    assert not (tmp_path / "results").exists()


def test_chapter_bad_value(tmp_path):
    with pytest.raises(ConfigError, match="parameter seed must be a whole number, got 'one'"):
        chapter.setup(namespace(tmp_path / "results", seed="one"), set())
    with pytest.raises(ConfigError, match="unknown scale 'tiny'"):
        chapter.setup({**namespace(tmp_path / "results"), "scale": "tiny"}, set())
    assert not (tmp_path / "results").exists()


def test_chapter_list_given_as_a_string_is_read_as_yaml(tmp_path):
    """papermill's ``-p seeds "[0, 1]"`` passes a string; its characters are not seeds."""
    ns = namespace(tmp_path / "results", seeds="[0, 1]", switches="{steps: paired}")
    chapter.setup(ns, set(), own_parameters=("seeds",))
    assert ns["seeds"] == [0, 1] and ns["switches"] == {"steps": "paired"}


@pytest.mark.parametrize("name, value", [("seeds", "0 and 1"), ("seeds", [0, "one"]),
                                         ("fractions", "half"), ("ablation_methods", "NL-FT")])
def test_chapter_list_of_the_wrong_kind_is_refused_with_the_yaml_form(name, value, tmp_path):
    with pytest.raises(ConfigError) as err:
        chapter.setup(namespace(tmp_path / "results", **{name: value}), set(),
                      own_parameters=(name,))
    example = chapter.YAML_EXAMPLES[chapter.PARAMETER_KINDS[name][0]]
    assert str(err.value).endswith(f"got {value!r} (with papermill give it as YAML: "
                                   f'-y "{name}: {example}")')
    assert not (tmp_path / "results").exists()


def test_every_chapter_parameter_has_a_kind():
    """A parameter without a kind would pass unchecked: each chapter's parameters cell is
    covered by chapter.PARAMETER_KINDS, and its default is of that kind."""
    jupytext = pytest.importorskip("jupytext")
    for path in sorted((REPO / "book").glob("*.md")):
        cells = [c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", [])]
        for cell in cells:
            defaults: dict = {}
            exec(cell.source, {}, defaults)
            for name, value in defaults.items():
                assert name in chapter.PARAMETER_KINDS, f"{path.name}: {name} has no kind"
                assert chapter.typed_parameter(name, value) == value, f"{path.name}: {name}"


def test_papermill_unknown_parameter_fails_its_cell(tmp_path):
    """``papermill book/03_knowledge_gap.md -p bogus 1`` fails the setup cell with the names."""
    jupytext = pytest.importorskip("jupytext")
    papermill = pytest.importorskip("papermill")
    notebook = jupytext.read(REPO / "book" / "03_knowledge_gap.md")
    results = tmp_path / "results"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(notebook, str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"scale": "smoke", "results_dir": str(results),
                                               "bogus": 1},
                                   cwd=str(tmp_path), progress_bar=False)
    message = str(err.value)
    assert "ConfigError" in message
    assert "unknown parameter(s) bogus: this chapter knows scale, device, data_root, seed, " \
           "results_dir" in message, message
    assert not results.exists()
    print(err.value.evalue)
