"""What every chapter does first: check its papermill parameters and open the Lab.

A chapter's ``parameters`` cell assigns its knobs; papermill injects a user's ``-p`` values
after it. ``setup`` refuses names the chapter does not know (a typo would otherwise be
silently ignored) and values of the wrong kind, with a message that lists what it knows.
papermill's ``-p NAME VALUE`` passes a list as a string (``-p seeds "[0, 1]"`` gives the
string ``"[0, 1]"``, whose ``list()`` is its characters): such a string is read as YAML, as
``-y "seeds: [0, 1]"`` would pass it, and anything else of the wrong kind is refused in one
line that shows the ``-y`` form.
"""
from __future__ import annotations

from pathlib import PurePath
from types import ModuleType

import yaml

from ..config import ConfigError

COMMON = ("scale", "device", "data_root", "seed", "results_dir", "protocol", "switches")

# Every chapter parameter's kind, and whether None (the profile's or protocol's value) is allowed.
PARAMETER_KINDS = {
    "scale": ("word", False), "device": ("word", False), "protocol": ("word", False),
    "loss": ("word", False), "data_root": ("path", True), "results_dir": ("path", True),
    "seed": ("integer", False), "workers": ("integer", True),
    "retain_fraction": ("number", False), "gamma": ("number", True), "rho": ("number", True),
    "lam": ("number", True), "seeds": ("integers", True), "training_seeds": ("integers", False),
    "fractions": ("numbers", True), "ablation_methods": ("words", False),
    "switches": ("mapping", True),
}
KIND_WORDS = {"word": "a word", "path": "a path", "integer": "a whole number",
              "number": "a number", "integers": "a list of whole numbers",
              "numbers": "a list of numbers", "words": "a list of names",
              "mapping": "a mapping of names to values"}
YAML_EXAMPLES = {"integers": "[0, 1]", "numbers": "[0.05, 0.2]", "words": "[FT, NL-FT]",
                 "mapping": "{steps: paired}"}


def _is_kind(kind: str, value) -> bool:
    whole = isinstance(value, int) and not isinstance(value, bool)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    listed = isinstance(value, (list, tuple))
    return {"word": isinstance(value, str), "path": isinstance(value, (str, PurePath)),
            "integer": whole, "number": number,
            "integers": listed and all(_is_kind("integer", v) for v in value),
            "numbers": listed and all(_is_kind("number", v) for v in value),
            "words": listed and all(isinstance(v, str) for v in value),
            "mapping": isinstance(value, dict)}[kind]


def typed_parameter(name: str, value):
    """``value`` as the kind parameter ``name`` takes; a list or mapping given as a string is
    read as YAML; any other mismatch is refused with the form that works.

    Args:
        name: the parameter's name (a parameter without a kind in PARAMETER_KINDS passes as is).
        value: what the parameters cell and papermill's injection left in the namespace.
    """
    if name not in PARAMETER_KINDS:
        return value
    kind, optional = PARAMETER_KINDS[name]
    if value is None and optional:
        return None
    typed = value
    if kind in YAML_EXAMPLES and isinstance(value, str):
        try:
            typed = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    if _is_kind(kind, typed):
        return typed
    hint = (f" (with papermill give it as YAML: -y \"{name}: {YAML_EXAMPLES[kind]}\")"
            if kind in YAML_EXAMPLES else "")
    raise ConfigError(f"parameter {name} must be {KIND_WORDS[kind]}"
                      f"{' or None' if optional else ''}, got {value!r}{hint}")


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
    chapter has (``COMMON``). The Lab writes nothing until the chapter first uses it
    (``Lab.prepare_data``).
    """
    from ..runs.lab import Lab
    from . import offline

    known = tuple(COMMON) + tuple(own_parameters)
    extra = unknown_parameters(namespace, before, known)
    if extra:
        raise ConfigError(f"unknown parameter(s) {', '.join(extra)}: this chapter knows "
                          f"{', '.join(known)}")
    for name in known:
        if name in namespace:
            namespace[name] = typed_parameter(name, namespace[name])
    offline.enable()
    import pandas as pd

    pd.set_option("display.max_colwidth", None)  # the book's tables show whole sentences
    # six significant digits, not six decimals: a lambda of 2.5e-6 printed as 0.000003
    pd.set_option("display.float_format", "{:.6g}".format)
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
