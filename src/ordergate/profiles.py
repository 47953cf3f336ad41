"""Reading ``user_profile.json`` from disk into a :class:`~ordergate.domain.registry.Registry`.

Every problem becomes one :class:`~ordergate.errors.StartupError` line that names the file and the
JSON path, so start-up (and later a reload) can refuse a bad file without a traceback.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from ordergate.domain.registry import ProfileError, Registry
from ordergate.errors import StartupError


def load_registry(path: Path) -> Registry:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StartupError(
            f"{path}: profile file not found; create it with 'ordergate generate' "
            "(or python Scripts/Generate_User_Profile.py)"
        ) from None
    except OSError as exc:
        raise StartupError(f"{path}: cannot read the profile file: {exc.strerror}") from None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StartupError(f"{path}: not valid JSON: {exc}") from None
    try:
        return Registry.from_document(document)
    except ProfileError as exc:
        raise StartupError(f"{path}: {exc}") from None
