"""Finding a campaign's ``campaign.json`` from what a user types: its name, its id (or a
unique prefix of it), or its directory (``pilotkit status``, the dashboard)."""

from __future__ import annotations

from pathlib import Path

from ..errors import PilotkitError
from .coordinator import registry_path
from .records import CAMPAIGN_FILE, read_status


def find_campaign(name: str) -> Path | None:
    """The ``campaign.json`` of the campaign registered as ``name`` (its name or its id,
    or a prefix of one id), or of the campaign directory (or file) ``name`` names."""
    path = Path(name)
    if path.is_dir() and (path / CAMPAIGN_FILE).is_file():
        return path / CAMPAIGN_FILE
    if path.name == CAMPAIGN_FILE and path.is_file():
        return path
    if not name or "/" in name or name.startswith("."):
        return None
    registered = registry_path(name)
    if registered.is_file():
        return _registered_target(registered)
    return _by_id_prefix(name, registered.parent)


def _registered_target(entry: Path) -> Path | None:
    try:
        target = Path(entry.read_text().strip())
    except OSError:
        return None
    return target if target.is_file() else None


def _by_id_prefix(prefix: str, registry: Path) -> Path | None:
    """The one registered campaign whose id starts with ``prefix`` (campaigns registered
    before their id was are found through their name, which starts their id)."""
    try:
        entries = [e for e in registry.iterdir() if e.name.startswith(prefix) or prefix.startswith(e.name)]
    except OSError:
        return None
    found: dict[str, Path] = {}
    for entry in entries:
        target = _registered_target(entry)
        if target is None:
            continue
        try:
            campaign_id = read_status(target).id
        except (OSError, ValueError):
            continue
        if campaign_id.startswith(prefix):
            found[campaign_id] = target
    if len(found) > 1:
        raise PilotkitError(f"{len(found)} campaigns start with '{prefix}': {', '.join(sorted(found))}")
    return next(iter(found.values()), None)
