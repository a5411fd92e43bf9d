"""A package's public names imported on first use (a module ``__getattr__``, PEP 562), so that importing the package
stays cheap: ``sam2_model`` and ``napari_sam2`` load torch and the model's code with the first name that needs them."""

from __future__ import annotations

import importlib
from typing import Any, Mapping, MutableMapping


def lazy_attribute(package: str, namespace: MutableMapping[str, Any], name: str, homes: Mapping[str, str]) -> Any:
    """The attribute ``name`` of ``package`` (its module ``__getattr__``): a public name found in its submodule
    ``homes[name]`` (kept in the package's ``namespace`` after, so it is looked up once), else a public submodule by its
    name (``sm.frames_io``). AttributeError for anything else, as for a missing attribute; a submodule that exists but
    fails to import raises its own error."""
    if name in homes:
        value = getattr(importlib.import_module(f".{homes[name]}", package), name)
        namespace[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", package)
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":  # the submodule exists but something it imports is missing
                raise
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
