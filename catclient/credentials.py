"""Where ``catclient login`` keeps session tokens: one JSON file, readable by its owner only."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class CredentialsError(Exception):
    """The credentials file exists but cannot be read."""


def config_dir() -> Path:
    """Where ``login`` keeps credentials: ``$CATCLIENT_CONFIG_DIR`` or ``~/.config/catclient``."""
    if os.environ.get("CATCLIENT_CONFIG_DIR"):
        return Path(os.environ["CATCLIENT_CONFIG_DIR"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "catclient"


def credentials_path() -> Path:
    """The credentials file (JSON, mode 0600)."""
    return config_dir() / "credentials.json"


def load_credentials() -> dict:
    """``{"servers": {url: {"token", "username", "saved"}}}`` (empty when there is no file)."""
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"servers": {}}
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from None
    data.setdefault("servers", {})
    return data


def save_credentials(data: dict) -> Path:
    """Write the credentials file atomically, readable by its owner only."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    try:
        os.fchmod(fd, 0o600)  # before any secret is written
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def stored_token(url: str) -> str | None:
    """The token ``login`` saved for *url*, if any."""
    entry = load_credentials()["servers"].get(url.rstrip("/"))
    return entry.get("token") if entry else None
