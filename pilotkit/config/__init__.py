"""Site and user configuration: named profiles that specs start from.

A site file (``/etc/pilotkit/config.toml``, or ``$PILOTKIT_SITE_CONFIG``) and a user file
(``$XDG_CONFIG_HOME/pilotkit/config.toml``) hold ``[profiles.NAME.<section>]`` tables
shaped as a spec's ``provider``, ``resources``, ``image``, ``container``, ``pilot`` and
``env``. The spec's own values win over the user file's, which win over the site's.
"""

from __future__ import annotations

from .files import PROFILE_ENV, SITE_ENV, ConfigFile, read_config, read_configs, site_file, user_file
from .profiles import (
    Setting,
    layers_for,
    merged_profile,
    merged_profile_data,
    merged_spec,
    profile_layers,
    settings,
)

__all__ = [
    "PROFILE_ENV",
    "SITE_ENV",
    "ConfigFile",
    "Setting",
    "layers_for",
    "merged_profile",
    "merged_profile_data",
    "merged_spec",
    "profile_layers",
    "read_config",
    "read_configs",
    "settings",
    "site_file",
    "user_file",
]
