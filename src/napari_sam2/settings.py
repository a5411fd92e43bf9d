"""Settings that persist between napari sessions (last model, weights and device), as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict

SETTINGS_ENV = "NAPARI_SAM2_SETTINGS"


def settings_path() -> Path:
    override = os.environ.get(SETTINGS_ENV)
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "napari-sam2" / "settings.json"


def load_settings() -> Dict[str, Any]:
    """The saved settings, or {} when there are none or the file is unreadable."""
    try:
        return dict(json.loads(settings_path().read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def save_settings(**values: Any) -> None:
    path = settings_path()
    merged = {**load_settings(), **values}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2))
    except OSError:
        pass  # a read-only home must not break the widget
