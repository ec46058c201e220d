"""What every chapter does first: check its papermill parameters and open the Lab.

A chapter's ``parameters`` cell assigns its knobs; papermill injects a user's ``-p`` values
after it. ``setup`` refuses names the chapter does not know (a typo would otherwise be
silently ignored) and values of the wrong kind, with a message that lists what it knows.
"""
from __future__ import annotations

from types import ModuleType

from ..config import ConfigError

COMMON = ("scale", "device", "data_root", "seed", "results_dir", "protocol", "switches")


def unknown_parameters(namespace: dict, before: set, known) -> list[str]:
    """Data names assigned since ``before`` that are neither known parameters nor private.

    Modules, functions and classes imported by the setup cell are not parameters.
    """
    return sorted(n for n in set(namespace) - set(before) - set(known)
                  if not n.startswith("_") and n not in ("In", "Out", "get_ipython", "exit", "quit")
                  and not callable(namespace[n]) and not isinstance(namespace[n], ModuleType))


def setup(namespace: dict, before: set, own_parameters=(), **lab_options):
    """Validate the chapter's parameters, switch plotly to the offline renderer, return a Lab.

    ``own_parameters``: the names of the chapter's own parameters, beyond the ones every
    chapter has (``COMMON``). The Lab writes nothing until the chapter first uses it (``Lab.prepare_data``).
    """
    from . import offline
    from ..runs.lab import Lab

    known = tuple(COMMON) + tuple(own_parameters)
    extra = unknown_parameters(namespace, before, known)
    if extra:
        raise ConfigError(f"unknown parameter(s) {', '.join(extra)}: this chapter knows "
                          f"{', '.join(known)}")
    offline.enable()
    import pandas as pd

    pd.set_option("display.max_colwidth", None)  # the book's tables show whole sentences
    return Lab(scale=namespace["scale"], device=namespace["device"],
               data_root=namespace["data_root"], seed=namespace["seed"],
               results_dir=namespace["results_dir"], protocol=namespace.get("protocol", "code"),
               switches=namespace.get("switches"), **lab_options)


def glue(name: str, value, display: bool = False) -> None:
    """myst-nb's glue for numbers in the prose, with numpy scalars made plain Python.

    numpy 2 prints a scalar as ``np.float32(1.5)``, which ``{glue:text}`` cannot format.
    """
    from myst_nb import glue as myst_glue

    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    myst_glue(name, value, display=display)
