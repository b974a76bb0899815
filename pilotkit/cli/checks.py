"""The checks of ``pilotkit doctor``: what a run on this site would need, each found ok,
worth a warning, or an error, with what to do about it."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingBinaryError, PilotkitError
from ..units import format_size, parse_duration, slurm_time
from ..vocab import CheckLevel

Level = CheckLevel

COMMAND_TIMEOUT = 15.0
"""Seconds a batch command may take to answer."""
CALLBACK_TIMEOUT = 60.0
"""Seconds the deep checks wait for their step on a node."""
SLURM_COMMANDS = ("sbatch", "srun", "squeue", "scancel", "sinfo")
SHARED_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "beegfs",
        "cephfs",
        "ceph",
        "fuse.sshfs",
        "panfs",
        "wekafs",
        "glusterfs",
    }
)
DISK_ERROR = 1 << 30
DISK_WARNING = 10 << 30


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    message: str
    hint: str | None = None

    def format(self) -> str:
        return f"{self.level:<7} {self.name}: {self.message}" + (f"; {self.hint}" if self.hint else "")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "message": self.message, "hint": self.hint}


@dataclass
class Site:
    """What the checks look at, from a profile (or the defaults)."""

    provider: str | None = None
    """None: not set (Slurm is checked where its commands are found)."""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    walltime: float = 60.0
    provider_options: dict[str, Any] = field(default_factory=dict)
    """The provider table's options (all but ``type``)."""
    workdir_root: Path = Path("pilotkit-runs")
    runtime: str | None = None
    stager: str | None = None
    gpus: int = 0

    @classmethod
    def from_profile(cls, data: dict[str, Any]) -> Site:
        provider = data.get("provider", {})
        resources = data.get("resources", {})
        walltime = resources.get("walltime")
        return cls(
            provider=provider.get("type"),
            partition=resources.get("partition"),
            account=resources.get("account"),
            qos=resources.get("qos"),
            constraint=resources.get("constraint"),
            walltime=parse_duration(walltime) if walltime else 60.0,
            provider_options={k: v for k, v in provider.items() if k != "type"},
            workdir_root=Path(data.get("pilot", {}).get("workdir_root") or "pilotkit-runs"),
            runtime=data.get("container", {}).get("runtime"),
            stager=data.get("image", {}).get("stager"),
            gpus=int(resources.get("gpus") or 0),
        )

    def slurm_args(self, *, step: bool = False) -> list[str]:
        """Options for one node: the profile's walltime, or a minute for a tiny ``step``."""
        args = ["-N", "1", "-t", slurm_time(60.0 if step else self.walltime)]
        for flag, value in (
            ("-p", self.partition),
            ("-A", self.account),
            ("-q", self.qos),
            ("-C", self.constraint),
        ):
            if value:
                args += [flag, value]
        return args

    async def callback(self) -> str | None:
        """The address a run's node agents would connect back to, chosen by the
        provider as a run chooses it; None when its agents do not call back.

        :raises PilotkitError: the provider finds no address that would do."""
        import msgspec

        from ..plugins import get_plugins

        provider = get_plugins().provider(self.provider or "slurm")
        try:
            options = msgspec.convert(self.provider_options, provider.Options)
        except msgspec.ValidationError as exc:
            raise PilotkitError(f"provider options: {exc}") from None
        return await provider.callback_address(options)


async def command(*argv: str, timeout: float = COMMAND_TIMEOUT) -> tuple[int | None, str, str]:
    """Return code (None: it did not answer in time), stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None, "", ""
    return proc.returncode, out.decode(errors="replace").strip(), err.decode(errors="replace").strip()


def _last(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


# --------------------------------------------------------------------------- Slurm


async def slurm_commands() -> list[Check]:
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        return [Check("batch commands", "error", f"not found: {', '.join(missing)}",
                      "load the Slurm module or add its bin directory to PATH")]  # fmt: skip
    code, out, err = await command("sinfo", "--version")
    version = out or "?"
    code, out, err = await command("squeue", "-h", "-o", "%i", "-u", os.environ.get("USER", "root"))
    if code is None:
        return [Check("batch commands", "error", f"squeue did not answer in {COMMAND_TIMEOUT:g}s",
                      "is slurmctld up? ask the site, or try again later")]  # fmt: skip
    if code != 0:
        return [Check("batch commands", "error", f"squeue failed: {_last(err)}",
                      "check SLURM_CONF and that slurmctld is reachable from here")]  # fmt: skip
    return [
        Check(
            "batch commands", "ok", f"{', '.join(SLURM_COMMANDS)} present; {version}; the controller answers"
        )
    ]


async def slurm_allocation(site: Site) -> Check:
    what = ", ".join(
        f"{name} '{value}'"
        for name, value in (("partition", site.partition), ("account", site.account), ("qos", site.qos),
                            ("constraint", site.constraint))
        if value
    ) or "the default partition"  # fmt: skip
    code, out, err = await command("sbatch", "--test-only", *site.slurm_args(), "--wrap", "true")
    if code is None:
        return Check("allocation", "error", f"sbatch --test-only did not answer in {COMMAND_TIMEOUT:g}s")
    if code != 0:
        return Check("allocation", "error", f"sbatch --test-only refuses {what}: {_last(err or out)}",
                     "check the names with `sinfo -s` (partitions) and `sacctmgr show assoc user=$USER` "
                     "(accounts, QoS), then fix the profile's [resources]")  # fmt: skip
    return Check("allocation", "ok", f"sbatch --test-only accepts {what}")


NO_NODE = f"no compute node ran the check within {CALLBACK_TIMEOUT:g}s (a busy queue?)"
NO_NODE_HINT = "run `pilotkit doctor --deep` again when the queue is shorter"


async def node_sees(site: Site, path: Path) -> tuple[bool | None, str]:
    """Whether a compute node sees ``path`` (a tiny srun); None when no node ran it in time."""
    code, _, err = await command(
        "srun", *site.slurm_args(step=True), "--quiet", "test", "-f", str(path), timeout=CALLBACK_TIMEOUT
    )
    if code is None:
        return None, NO_NODE
    return code == 0, _last(err) if code else ""


async def callback_reachable(site: Site) -> Check:
    """A node connects back to the address the pilot would listen on."""
    try:
        host = await site.callback()
    except PilotkitError as exc:
        return Check("callback", "error", str(exc))
    if host is None:
        return Check("callback", "ok", f"the {site.provider} provider's agents do not call back")
    connected = asyncio.Event()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        writer.close()

    try:
        server = await asyncio.start_server(accept, host, 0)
    except OSError as exc:
        return Check("callback", "error", f"cannot listen on {host}: {exc.strerror or exc}",
                     "set the profile's provider.callback_host (or $PILOTKIT_CALLBACK_HOST) to an address "
                     "of this machine")  # fmt: skip
    port = server.sockets[0].getsockname()[1]
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=5).close()"
    async with server:
        code, out, err = await command("srun", *site.slurm_args(step=True), "--quiet", "python3", "-c", probe,
                                       timeout=CALLBACK_TIMEOUT)  # fmt: skip
        if code == 0:
            try:
                await asyncio.wait_for(connected.wait(), 5)
            except TimeoutError:
                pass
    if connected.is_set():
        return Check("callback", "ok", f"a compute node connected back to {host}:{port}")
    if code is None:
        return Check("callback", "warning", f"{host}:{port} not tried: {NO_NODE}", NO_NODE_HINT)
    why = _last(err or out)
    return Check("callback", "error", f"a compute node cannot connect to {host}:{port} ({why})",
                 "set the profile's provider.callback_host (or $PILOTKIT_CALLBACK_HOST) to an address "
                 "of this machine that the nodes reach")  # fmt: skip


# --------------------------------------------------------------------------- this machine


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _filesystem(path: Path) -> str:
    best, fstype = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3:
                    mount = fields[1].replace("\\040", " ")
                    if str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount:
                        if len(mount) >= len(best):
                            best, fstype = mount, fields[2]
    except OSError:
        pass
    return fstype


async def workdir(site: Site, *, batch: bool, deep: bool) -> list[Check]:
    root = site.workdir_root.absolute()
    base = _existing(root)
    if not os.access(base, os.W_OK):
        return [Check("workdir", "error", f"{root}: cannot write in {base}",
                      "set the profile's pilot.workdir_root to a directory of yours")]  # fmt: skip
    checks: list[Check] = []
    usage = shutil.disk_usage(base)
    free = f"{format_size(usage.free)} free"
    if usage.free < DISK_ERROR:
        checks.append(
            Check("disk", "error", f"{base}: {free}", "free some space or use another workdir_root")
        )
    elif usage.free < DISK_WARNING:
        checks.append(Check("disk", "warning", f"{base}: {free}", "task output may fill it"))
    else:
        checks.append(Check("disk", "ok", f"{base}: {free}"))
    fstype = _filesystem(base)
    if not batch:
        checks.insert(0, Check("workdir", "ok", f"{root} (on {fstype})"))
        return checks
    if deep:
        fd, name = tempfile.mkstemp(prefix=".pilotkit-doctor-", dir=base)
        os.close(fd)
        try:
            seen, why = await node_sees(site, Path(name))
        finally:
            os.unlink(name)
        if seen:
            checks.insert(0, Check("workdir", "ok", f"{root}: a compute node sees it (on {fstype})"))
        elif seen is None:
            checks.insert(
                0, Check("workdir", "warning", f"{root} (on {fstype}) not tried: {why}", NO_NODE_HINT)
            )
        else:
            checks.insert(0, Check("workdir", "error", f"{root}: a compute node does not see it" + (f" ({why})" if why else ""),
                                   "set the profile's pilot.workdir_root to the filesystem the nodes share"))  # fmt: skip
    elif fstype in SHARED_FILESYSTEMS:
        checks.insert(0, Check("workdir", "ok", f"{root} is on {fstype}, a shared filesystem"))
    else:
        checks.insert(0, Check("workdir", "warning", f"{root} is on {fstype}, which nodes may not share",
                               "`pilotkit doctor --deep` checks from a node"))  # fmt: skip
    return checks


async def runtimes(site: Site) -> list[Check]:
    """Each installed container runtime plugin's binary and version, found as a run
    finds them (the runtime's own ``detect``)."""
    from ..plugins import get_plugins

    plugins = get_plugins()
    found: dict[str, str] = {}
    problems: dict[str, str] = {}
    for ident in sorted(plugins.tables["runtimes"]):
        try:
            info = await plugins.runtime(ident)().detect()
        except MissingBinaryError:
            continue
        except (PilotkitError, OSError) as exc:
            problems[ident] = str(exc)
            continue
        found[ident] = f"{ident} ({Path(info.binary).name} {info.version}, {info.binary})"
    listed = "; ".join(found.values())
    wanted = site.runtime
    if wanted and wanted not in found:
        why = problems.get(wanted) or (
            "not installed here" if wanted in plugins.tables["runtimes"] else "no plugin of that name"
        )
        return [Check("containers", "error", f"the profile's runtime {wanted}: {why}"
                      + (f"; found {listed}" if found else ""),
                      "load its module, or set container.runtime to one that is")]  # fmt: skip
    checks = [Check("containers", "error", f"{ident}: {why}") for ident, why in problems.items()]
    if found:
        return [Check("containers", "ok", listed), *checks]
    return [Check("containers", "warning", "no container runtime found",
                  "only specs with a [container] table need one"), *checks]  # fmt: skip


def cvmfs(site: Site) -> Check:
    if Path("/cvmfs").is_dir() and any(Path("/cvmfs").iterdir()):
        return Check("cvmfs", "ok", "/cvmfs is mounted")
    if site.stager == "cvmfs":
        return Check("cvmfs", "error", "/cvmfs is not mounted here but the profile stages images from it",
                     "ask the site about CVMFS, or use another image stager")  # fmt: skip
    return Check("cvmfs", "ok", "/cvmfs is not mounted (only the cvmfs stager needs it)")


def gpus(site: Site) -> Check:
    from ..gpu import detect_gpus

    report = detect_gpus()
    if report.gpus:
        names = sorted({g.name for g in report.gpus})
        return Check(
            "gpus", "ok", f"{len(report.gpus)} GPU(s): {', '.join(names)}, driver {report.driver_version}"
        )
    why = f" ({report.reason})" if report.reason else ""
    if site.gpus and site.provider == "local":
        return Check("gpus", "error", f"the profile asks for {site.gpus} GPU(s), this machine has none{why}")
    return Check("gpus", "ok", f"none on this machine{why}")


def cgroups() -> Check:
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Check("cgroups", "warning", "cgroup v1: rootless container runtimes cannot set limits",
                     "use apptainer, or ask the site for cgroup v2 with delegation")  # fmt: skip
    own = "/"
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = line[3:]
    except OSError:
        pass
    path = Path("/sys/fs/cgroup") / own.lstrip("/")
    if os.access(path, os.W_OK):
        return Check("cgroups", "ok", f"cgroup v2, {path} delegated to you")
    return Check("cgroups", "warning", f"cgroup v2, {path} not delegated to you: rootless runtimes cannot set limits",
                 "ask the site for systemd delegation (Delegate=yes), or use apptainer")  # fmt: skip


async def run_checks(site: Site, *, deep: bool) -> list[Check]:
    checks: list[Check] = []
    slurm = site.provider == "slurm" or (site.provider is None and shutil.which("sbatch") is not None)
    allocates = False
    if slurm:
        commands = await slurm_commands()
        checks += commands
        if all(c.level == "ok" for c in commands):
            checks.append(await slurm_allocation(site))
            allocates = checks[-1].level == "ok"
            if deep and allocates:
                checks.append(await callback_reachable(site))
    checks += await workdir(site, batch=slurm, deep=deep and allocates)
    checks += await runtimes(site)
    checks.append(cvmfs(site))
    checks.append(await asyncio.to_thread(gpus, site))
    checks.append(cgroups())
    return checks
