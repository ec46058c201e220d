"""The paper's numbers, read from its tables as data, and the names the book uses for them."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

CITATION = ("Xue, Liu, McDonagh, Tsaftaris. Erase to Enhance: Data-Efficient Machine "
            "Unlearning in MRI Reconstruction. MIDL 2024 (PMLR), arXiv 2405.15517.")

# The protocol's sizes and settings from the paper's text (Sections 4.1-4.2).
PROTOCOL = {"retain_slices": 5898, "retain_volumes": 1000, "forget_slices": 536,
            "val_slices": 1198, "test_volumes": 100, "acceleration": 8, "center_fraction": 0.04,
            "cascades": 12, "parameters_million": 29.9, "epochs": 50, "unlearn_epochs": 5,
            "lambda_raw": 1e-5}

def unlearning_share(method: str) -> float:
    """Slices an unlearning run reads over the slices training G read, in the paper: 5 passes
    over Df and Dr' (10% of Dr) for the forgetting methods, over Dr for Full FT, after 50 epochs
    over Dr and Df."""
    p = PROTOCOL
    training = p["epochs"] * (p["retain_slices"] + p["forget_slices"])
    per_epoch = {"Full FT": p["retain_slices"], "FT": 0.1 * p["retain_slices"]}.get(
        method, p["forget_slices"] + 0.1 * p["retain_slices"])
    return p["unlearn_epochs"] * per_epoch / training


# Our record names -> the paper's row names (its tables' data, not what readers see).
PAPER_NAME = {"original": "G", "oracle": "Oracle"}

# What readers see: the names of the models every method is compared with, in tables, figures
# and panels. Records, run keys and code keep "oracle" and "original".
ORACLE = "G-hat (oracle)"
DISPLAY_NAMES = {"oracle": ORACLE, "original": "G", "zero-filled": "zero-filled input"}


def display_name(name: str) -> str:
    """What the book calls the record ``name``: G-hat (oracle), G, or a method's own name."""
    return DISPLAY_NAMES.get(name, name)


@lru_cache(maxsize=None)
def table(number: int) -> pd.DataFrame:
    """Table 1, 2 or 3 of the paper as a DataFrame (PSNR dB, SSIM; mean and std)."""
    if number not in (1, 2, 3):
        raise ValueError("the paper has tables 1, 2 and 3")
    with (resources.files("erase") / "paper_data").joinpath(f"table{number}.csv").open() as f:
        return pd.read_csv(f)


def value(number: int, method: str, column: str, **where) -> float:
    """One number of a paper table, e.g. value(1, "G", "kta_psnr")."""
    frame = table(number)
    rows = frame[frame["method"] == PAPER_NAME.get(method, method)]
    for key, wanted in where.items():
        rows = rows[(rows[key] - wanted).abs() < 1e-9]
    if len(rows) != 1:
        raise KeyError(f"table {number} has {len(rows)} rows for {method} {where}")
    return float(rows[column].iloc[0])


# The noisy label's strength in a unit that transfers between data sets: rho = the noise's root
# mean square over G's root-mean-square error on Df. The paper gives lambda = 1e-5 on fastMRI's
# raw scale and G's UA (PSNR on Df, data range = the volume's maximum) in Table 1; G's RMSE on
# Df is then target max * 10^(-UA / 20). The one number the paper does not give is its knee
# targets' maximum: fastMRI's multi-coil knee RSS targets peak around 5e-4 (our files'
# SIGNAL_SCALE), and we read the band from 3e-4 (rho high) to 1e-3 (rho low). Rounded to two
# figures: the assumption behind them is not finer than that.
KNEE_TARGET_MAX = {"low": 1e-3, "central": 5e-4, "high": 3e-4}  # rho's low end has the largest
NOISE_SOURCE = ("lambda = 1e-5 (Section 4.2) against G's UA in Table 1, at fastMRI knee targets "
                "peaking at 5e-4 (band: 1e-3 to 3e-4)")


def rho_at(target_max: float) -> float:
    """The paper's noise rms over its G's RMSE on Df if its knee targets peaked at
    ``target_max`` (lambda's rms is lambda for both noise forms, half-normal and gaussian).

    Args:
        target_max: the maximum of a fastMRI knee target volume, on the raw scale.
    """
    g_rmse = target_max * 10 ** (-value(1, "G", "ua_psnr") / 20)
    return PROTOCOL["lambda_raw"] / g_rmse


def _two_figures(x: float) -> float:
    return float(f"{x:.2g}")


def noise_strength() -> dict:
    """The paper's rho with its band and source: ``{"rho": 1.4, "low": 0.72, ...}``."""
    return {"rho": _two_figures(rho_at(KNEE_TARGET_MAX["central"])),
            "low": _two_figures(rho_at(KNEE_TARGET_MAX["low"])),
            "high": _two_figures(rho_at(KNEE_TARGET_MAX["high"])),
            "knee_target_max": dict(KNEE_TARGET_MAX), "source": NOISE_SOURCE}


# The paper's findings (its Sections 4 and 5, in our words), which the scorecard checks on this run.
FINDINGS = {
    1: "Knowledge gap: G reconstructs knee far better than the brain-only oracle.",
    2: "Mixing anatomies costs brain quality a little and causes hallucinations.",
    3: ("Fine-tuning (FT, Full FT) keeps brain quality but does not unlearn: KTA stays at G's "
        "level."),
    4: "GA-l1 or NL alone collapses the model on both anatomies.",
    5: "NL-FT gets close to the oracle on both (BTA within about 1 dB, KTA down to the oracle's); "
       "GA-l1-FT unlearns too but loses more brain quality.",
    6: "Unlearning costs a small fraction of retraining.",
    7: "More retain data is not always better: BTA against retain fraction rises, then falls.",
    8: "Unlearning removes the hallucinations that mixing anatomies caused (the title's claim).",
}
