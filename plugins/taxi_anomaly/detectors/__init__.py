"""Window detectors as configuration: a model spec (include/models/<name>.yaml) names a family and its settings;
a family is a WindowDetector subclass in a module of this package, found by its `family` name.

Adding a family is one module here (a class with `family`, `Params`, `_fit`, `_score`) and one spec file: the
job, the registry metadata, the trigger forms' choices and the docs' table (docs/detectors.md, checked by a test)
pick it up. Importing this package is cheap; a family's module (numpy, and pyspark or sklearn inside its methods)
loads on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taxi_anomaly.detectors.spec import DetectorSpec, SpecError, load_spec, spec_names

if TYPE_CHECKING:
    from taxi_anomaly.detectors.base import WindowDetector

_NOT_FAMILIES = {"base", "spec"}

__all__ = ["DetectorSpec", "SpecError", "families", "family_of", "load_spec", "resolve_spec", "spec_names"]


def families() -> dict[str, type[WindowDetector]]:
    """Every family of this package by name (imports the family modules)."""
    from taxi_anomaly.detectors.base import WindowDetector

    found: dict[str, type[WindowDetector]] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name in _NOT_FAMILIES:
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        for value in vars(loaded).values():
            if isinstance(value, type) and issubclass(value, WindowDetector) and value.__module__ == loaded.__name__:
                found[value.family] = value
    return found


def family_of(name: str) -> type[WindowDetector]:
    known = families()
    if name not in known:
        raise SpecError(f"unknown detector family {name!r}; families: {', '.join(sorted(known))}")
    return known[name]


def resolve_spec(name: str, granularity: str, overrides: Mapping[str, Any] | None = None) -> DetectorSpec:
    """The spec `name` for a granularity with the overrides applied, its parameters checked by its family."""
    spec = load_spec(name, granularity, overrides)
    family_of(spec.family).check_params(spec)
    return spec
