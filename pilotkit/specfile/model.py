"""The pilot spec as plain, typed data: what a TOML spec file holds.

Core sections are msgspec Structs that forbid unknown fields. The ``provider``,
``image``, ``container`` and ``app`` sections each have a selector key (``type``,
``stager``, ``runtime``) and take the selected plugin's own options in the same table;
here those options are kept as they were written (``options``), unchecked: the resolve
step (:mod:`pilotkit.spec`) checks them against the plugin's ``Options`` struct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

Duration = Annotated[
    str | float,
    msgspec.Meta(
        description="Text with a unit, such as '90s', '10m', '1h30m', '01:30:00' (a bare number is refused).",
        extra={"pilotkit": "duration"},
    ),
]
Size = Annotated[
    str | int,
    msgspec.Meta(
        description="Bytes, or text such as '512M', '4GiB', '2GB' (bare K/M/G are binary).",
        extra={"pilotkit": "size"},
    ),
]


class Resources(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What to claim. Per-node figures; unset means all the node has."""

    nodes: Annotated[int, msgspec.Meta(ge=1)] = 1
    cores: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Cores per node."""
    memory: Size | None = None
    """Memory per node."""
    gpus: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """GPUs per node (local: None means every visible GPU; batch: None means none)."""
    walltime: Duration | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    exclusive: bool = False


class ProviderSection(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``type`` selects the provider plugin; other keys are its options."""

    type: str = "local"
    options: dict[str, Any] = {}


class ImageSection(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The container image and how to stage it; other keys are the stager's options."""

    ref: str
    stager: str | None = None
    """Default: chosen by the ref's scheme (``docker://`` -> cvmfs, a path -> local)."""
    options: dict[str, Any] = {}


class ContainerSection(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How tasks run in the image; other keys are the runtime's options."""

    runtime: str
    binds: list[str] = []
    """``src[:dst[:ro|rw]]``."""
    options: dict[str, Any] = {}


class AppSection(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``type`` selects the app plugin; other keys are its options."""

    type: str = "tasks"
    options: dict[str, Any] = {}


class PilotSection(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How the pilot behaves."""

    drain_margin: Duration = "60s"
    """Stop starting tasks this long before the walltime ends."""
    grace: Duration = "10s"
    """Between SIGTERM and SIGKILL when tasks are stopped."""
    workdir: str | None = None
    """Where task dirs, logs and results go. Default: <workdir_root>/<pilot-id>."""
    workdir_root: str | None = None
    """Where runs go when ``workdir`` is unset, each in <pilot-id>/. Default: ./pilotkit-runs
    (a profile sets it to a directory on the filesystem the nodes share)."""
    heartbeat: Duration = "8s"
    heartbeat_timeout: Duration = "16s"


class CampaignSection(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Work that spans many allocations: one backlog, allocations claimed while it lasts."""

    max_allocations: Annotated[int, msgspec.Meta(ge=1)] = 10
    """Allocations in total; the campaign ends failed if it needs more."""
    parallel: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Allocations queued or running at once."""
    idle_timeout: Duration = "2m"
    """An allocation with nothing to run is released after this."""
    backlog_per_allocation: Annotated[int, msgspec.Meta(ge=0)] = 0
    """0: submit while any task waits; N: one allocation per N waiting tasks."""
    submit_backoff: Duration = "10s"
    """Wait after a failed submission; doubled for each further one in a row."""
    submit_backoff_max: Duration = "30m"
    pause_after: Annotated[int, msgspec.Meta(ge=1)] = 10
    """Submissions failed in a row after which the campaign pauses."""
    checkpoint_signal: str = "SIGUSR1"
    """Sent at an allocation's drain point to tasks of groups with ``checkpoint = true``."""


class PilotSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A whole pilot spec, as in a TOML file."""

    name: str
    description: str = ""
    profile: str | None = None
    """A named profile of the site and user configuration files to start from."""
    env: dict[str, str] = {}
    provider: ProviderSection = msgspec.field(default_factory=ProviderSection)
    resources: Resources = msgspec.field(default_factory=Resources)
    image: ImageSection | None = None
    container: ContainerSection | None = None
    pilot: PilotSection = msgspec.field(default_factory=PilotSection)
    app: AppSection = msgspec.field(default_factory=AppSection)
    campaign: CampaignSection | None = None


@dataclass(frozen=True)
class Bind:
    source: str
    target: str
    readonly: bool = False

    @classmethod
    def parse(cls, text: str) -> Bind:
        """``src[:dst[:ro|rw]]``."""
        parts = text.split(":")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"bind '{text}' is not src[:dst[:ro|rw]]")
        target = parts[1] if len(parts) > 1 and parts[1] else parts[0]
        mode = parts[2] if len(parts) > 2 else "rw"
        if mode not in ("ro", "rw"):
            raise ValueError(f"bind '{text}': mode must be ro or rw, not '{mode}'")
        return cls(parts[0], target, mode == "ro")


PLUGGABLE: dict[str, str] = {"provider": "type", "image": "stager", "container": "runtime", "app": "type"}
"""The sections that hold plugin options inline, and the key that picks the plugin."""

SECTIONS: dict[str, type[msgspec.Struct]] = {
    "provider": ProviderSection,
    "image": ImageSection,
    "container": ContainerSection,
    "app": AppSection,
}
"""The core struct of each pluggable section."""


def core_keys(section: str) -> set[str]:
    """The keys of a pluggable section that are not the plugin's options."""
    return {f.name for f in msgspec.structs.fields(SECTIONS[section])} - {"options"}
