"""The ``cvmfs`` stager: a ``docker://`` image as CVMFS publishes it, unpacked."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import msgspec

from pilotkit.api import (
    Duration,
    Log,
    PilotContext,
    PilotkitError,
    ResolvedSpec,
    SpecProblem,
    StagedImage,
    Stager,
    parse_duration,
)

from .probe import in_daemon_thread, probe_image
from .refs import parse_docker_ref, unpacked_path


class CvmfsOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[image]`` keys of ``stager = "cvmfs"``."""

    root: str = "/cvmfs"
    """Where CVMFS repositories are mounted."""
    repository: str = "unpacked.cern.ch"
    """The repository that publishes unpacked images."""
    timeout: Duration = 5.0
    """How long the repository may take to answer the probe."""


class CvmfsStager(Stager):
    """Finds ``docker://org/name:tag`` under ``<root>/<repository>/`` and checks it answers.

    Nothing is copied: the runtime gets the unpacked directory (``format="dir"``).
    """

    id = "cvmfs"
    description = "docker:// images published unpacked on CVMFS (unpacked.cern.ch)"
    schemes: ClassVar[tuple[str, ...]] = ("docker",)
    Options = CvmfsOptions

    options: CvmfsOptions

    def __init__(self, options: CvmfsOptions | None = None) -> None:
        super().__init__(options or CvmfsOptions())

    @classmethod
    def check(cls, spec: ResolvedSpec) -> list[SpecProblem]:
        problems = []
        image = spec.spec.image
        if image is not None and image.ref.startswith("docker://"):
            try:
                parse_docker_ref(image.ref)
            except PilotkitError as exc:
                problems.append(SpecProblem("image.ref", str(exc)))
        elif image is not None:
            problems.append(SpecProblem("image.ref", "the cvmfs stager takes docker:// references"))
        options = spec.stager_options
        if isinstance(options, CvmfsOptions):
            if not Path(options.root).is_absolute():
                problems.append(SpecProblem("image.root", "expected an absolute path"))
            if "/" in options.repository or not options.repository:
                problems.append(SpecProblem("image.repository", "expected a repository name"))
        return problems

    @property
    def repository_dir(self) -> Path:
        return Path(self.options.root) / self.options.repository

    async def stage(self, ref: str, ctx: PilotContext) -> StagedImage:
        docker = parse_docker_ref(ref)
        repository = self.repository_dir
        image = unpacked_path(docker, repository)
        timeout = parse_duration(self.options.timeout)
        try:
            target = await in_daemon_thread(lambda: probe_image(repository, image, ref), timeout)
        except TimeoutError:
            raise PilotkitError(f"CVMFS repository {repository} did not answer within {timeout:g}s") from None
        ctx.emit(Log(pilot=ctx.pilot_id, level="info", source=self.id, message=f"image {ref}: {target}"))
        return StagedImage(ref=ref, path=target, format="dir")
