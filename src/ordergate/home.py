"""The home folder: ``Jsons/`` (catalogue and profiles), ``Logs/`` and ``data/`` (SPEC section 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ordergate.tools.catalogue import default_catalogue_path


def init_home(home: Path) -> list[Path]:
    """Create what is missing and return what was created; never overwrites existing files."""
    created: list[Path] = []
    for folder in (home / "Jsons", home / "Logs", home / "data"):
        if not folder.is_dir():
            folder.mkdir(parents=True)
            created.append(folder)
    catalogue = home / "Jsons" / "raw_details.json"
    if not catalogue.exists():
        shutil.copyfile(default_catalogue_path(), catalogue)
        created.append(catalogue)
    return created
