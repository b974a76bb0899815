"""Can this node run k3s? Each thing k3s needs, looked at on this machine, with what to
ask the site for when it is missing.

Rootful k3s (as root) needs cgroup v2 or v1 with its controllers, the ``overlay`` and
``br_netfilter`` kernel modules and the ``k3s`` binary. Rootless k3s (any other user)
needs, on top: cgroup v2 with the ``cpu``, ``cpuset``, ``io``, ``memory`` and ``pids``
controllers delegated to the user's cgroup, ``newuidmap``/``newgidmap`` with subordinate
ids for the user, unprivileged user namespaces and ``/dev/fuse`` (fuse-overlayfs).

Run as ``python -m pilotkit_k3s.preflight [--rootless|--rootful]`` (the app does, on every
node) or ``pilotkit k3s preflight``: one screen, exit 0 when nothing is missing, 2 when
something is.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from pilotkit.api import ProbeCheck

CGROUP_ROOT = Path("/sys/fs/cgroup")
ROOTLESS_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
"""The cgroup v2 controllers rootless k3s needs in the user's own cgroup."""
MODULES = ("overlay", "br_netfilter")
EXIT_MISSING = 2


class Check(msgspec.Struct, omit_defaults=True):
    """One thing k3s needs, and whether this node has it."""

    name: str
    ok: bool
    found: str
    """What was seen (a path, a version, a list of controllers...)."""
    ask: str = ""
    """What to ask the site for when it is missing."""


class Report(msgspec.Struct):
    """Every check of one node."""

    node: str
    rootless: bool
    checks: list[Check]

    @property
    def missing(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


@dataclass(frozen=True)
class Machine:
    """Where the checks look (a test may point them elsewhere)."""

    root: Path = Path("/")
    which: Callable[[str], str | None] = shutil.which

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str | None:
        try:
            return self.path(absolute).read_text()
        except OSError:
            return None


def own_cgroup(machine: Machine) -> str | None:
    """This process's cgroup v2 path (``/user.slice/...``), from ``/proc/self/cgroup``."""
    text = machine.read("/proc/self/cgroup") or ""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def check_k3s(machine: Machine, binary: str = "k3s") -> Check:
    found = machine.which(binary)
    return Check(
        "k3s binary",
        found is not None,
        found or f"no '{binary}' on PATH",
        "a k3s release binary (one file, github.com/k3s-io/k3s/releases) on PATH on every node, "
        "or its path as [app] binary",
    )


def check_cgroup_v2(machine: Machine) -> Check:
    controllers = machine.read("/sys/fs/cgroup/cgroup.controllers")
    return Check(
        "cgroup v2",
        controllers is not None,
        "unified hierarchy at /sys/fs/cgroup"
        if controllers is not None
        else "no /sys/fs/cgroup/cgroup.controllers",
        "the unified cgroup v2 hierarchy (boot with systemd.unified_cgroup_hierarchy=1)",
    )


def check_controllers(machine: Machine, rootless: bool) -> Check:
    """Rootless: the cgroup v2 controllers of this process's own cgroup (what was
    delegated to the user); rootful: those of the root cgroup (v2), or the enabled v1
    hierarchies."""
    name = "delegated cgroup controllers" if rootless else "cgroup controllers"
    ask = (
        "cgroup v2 delegation of cpu cpuset io memory pids to users' jobs "
        "(systemd: Delegate=cpu cpuset io memory pids in user@.service; Slurm: cgroup/v2 with delegation)"
        if rootless
        else "the cpu cpuset io memory pids cgroup controllers enabled"
    )
    where = own_cgroup(machine) if rootless else "/"
    text = None
    if where is not None:
        text = machine.read("/sys/fs/cgroup" + ("" if where == "/" else where) + "/cgroup.controllers")
    if text is None and not rootless:  # cgroup v1: the hierarchies the kernel enabled
        v1 = machine.read("/proc/cgroups") or ""
        enabled = {
            f[0] for f in (line.split() for line in v1.splitlines()[1:]) if len(f) >= 4 and f[3] == "1"
        }
        lacking = [c for c in ROOTLESS_CONTROLLERS if c not in enabled and c != "io"]
        found = f"cgroup v1: {' '.join(sorted(enabled)) or 'none'}" + (
            f"; lacking {' '.join(lacking)}" if lacking else ""
        )
        return Check(name, bool(enabled) and not lacking, found, ask)
    have = set((text or "").split())
    lacking = [c for c in ROOTLESS_CONTROLLERS if c not in have]
    if text is None:
        found = (
            "no cgroup v2 to delegate from"
            if machine.read("/sys/fs/cgroup/cgroup.controllers") is None
            else f"cannot read the controllers of cgroup {where or '(unknown)'}"
        )
    else:
        found = f"{' '.join(sorted(have)) or 'none'} in {where}" + (
            f"; lacking {' '.join(lacking)}" if lacking else ""
        )
    return Check(name, text is not None and not lacking, found, ask)


def check_idmap(machine: Machine, user: str) -> Check:
    tools = {t: machine.which(t) for t in ("newuidmap", "newgidmap")}
    lacking = [t for t, path in tools.items() if path is None]
    subuid = machine.read("/etc/subuid") or ""
    subgid = machine.read("/etc/subgid") or ""
    uid = str(os.getuid())
    has_ids = all(
        any(line.split(":", 1)[0] in (user, uid) for line in text.splitlines() if line.strip())
        for text in (subuid, subgid)
    )
    problems = [*(f"no {t}" for t in lacking)]
    if not has_ids:
        problems.append(f"no /etc/subuid and /etc/subgid entry for {user}")
    return Check(
        "newuidmap/newgidmap",
        not problems,
        "; ".join(problems) or " ".join(p for p in tools.values() if p),
        f"the uidmap package (newuidmap, newgidmap) and subordinate ids for {user} in /etc/subuid and /etc/subgid",
    )


def check_userns(machine: Machine) -> Check:
    problems = []
    limit = (machine.read("/proc/sys/user/max_user_namespaces") or "").strip()
    if limit in ("", "0"):
        problems.append(f"user.max_user_namespaces is {limit or 'unreadable'}")
    clone = machine.read("/proc/sys/kernel/unprivileged_userns_clone")
    if clone is not None and clone.strip() == "0":
        problems.append("kernel.unprivileged_userns_clone is 0")
    apparmor = machine.read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if apparmor is not None and apparmor.strip() == "1":
        problems.append("kernel.apparmor_restrict_unprivileged_userns is 1")
    return Check(
        "user namespaces",
        not problems,
        "; ".join(problems) or f"max_user_namespaces {limit}",
        "unprivileged user namespaces (sysctl user.max_user_namespaces > 0, "
        "kernel.unprivileged_userns_clone = 1)",
    )


def check_fuse(machine: Machine) -> Check:
    path = machine.path("/dev/fuse")
    ok = path.exists() and os.access(path, os.R_OK | os.W_OK)
    return Check(
        "/dev/fuse",
        ok,
        "/dev/fuse" if ok else ("/dev/fuse is not usable" if path.exists() else "no /dev/fuse"),
        "/dev/fuse on the compute nodes, readable and writable by users (for fuse-overlayfs)",
    )


def check_module(machine: Machine, module: str) -> Check:
    loaded = machine.path(f"/sys/module/{module}").exists()
    if not loaded and module == "overlay":
        loaded = "overlay" in (machine.read("/proc/filesystems") or "")
    if not loaded and module == "br_netfilter":
        loaded = machine.path("/proc/sys/net/bridge").exists()
    return Check(
        f"kernel module {module}",
        loaded,
        "loaded" if loaded else "not loaded",
        f"the {module} kernel module loaded on the compute nodes (modprobe {module}, or in /etc/modules-load.d)",
    )


def run_checks(
    rootless: bool | None = None, binary: str = "k3s", machine: Machine | None = None, node: str | None = None
) -> Report:
    """Every check for rootless (default: when not root) or rootful k3s."""
    machine = machine or Machine()
    if rootless is None:
        rootless = os.geteuid() != 0
    checks = [check_k3s(machine, binary)]
    if rootless:
        checks.append(check_cgroup_v2(machine))
    checks.append(check_controllers(machine, rootless))
    if rootless:
        checks += [check_idmap(machine, _user()), check_userns(machine), check_fuse(machine)]
    checks += [check_module(machine, m) for m in MODULES]
    return Report(node or os.uname().nodename, rootless, checks)


def render(report: Report) -> str:
    """One screen: every check, and for each missing one what to ask the site for."""
    mode = "rootless" if report.rootless else "rootful"
    lines = [f"k3s preflight on {report.node} ({mode}):"]
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        lines.append(f"  {'ok     ' if check.ok else 'MISSING'}  {check.name:<{width}}  {check.found}")
    missing = report.missing
    if missing:
        lines.append("")
        lines.append(f"{len(missing)} missing; ask the site for:")
        lines.extend(f"  - {c.name}: {c.ask}" for c in missing)
    else:
        lines.append("nothing missing: this node can run k3s")
    return "\n".join(lines)


def probe_checks(machine: Machine | None = None) -> list[ProbeCheck]:
    """The preflight as ``pilotkit probe`` lines: one saying whether this node could run
    k3s (rootless or rootful, as this user would), then each check; what is missing is a
    warning (pilotkit itself runs here), with what to ask the site for."""
    report = run_checks(machine=machine)
    mode = "rootless" if report.rootless else "rootful"
    missing = report.missing
    summary = ProbeCheck(
        "k3s",
        "warning" if missing else "ok",
        f"this node could run k3s ({mode})"
        if not missing
        else f"this node cannot run k3s ({mode}): missing {', '.join(c.name for c in missing)}",
        "pilotkit k3s preflight names what to ask the site for" if missing else None,
    )
    return [summary] + [
        ProbeCheck(f"k3s {c.name}", "ok" if c.ok else "warning", c.found, None if c.ok else c.ask)
        for c in report.checks
    ]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pilotkit_k3s.preflight")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--rootless", action="store_const", const=True, dest="rootless")
    mode.add_argument("--rootful", action="store_const", const=False, dest="rootless")
    parser.add_argument("--binary", default="k3s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run_checks(args.rootless, args.binary)
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        sys.stdout.write(render(report) + "\n")
    if report.missing:
        sys.stderr.write(
            f"k3s cannot run on {report.node}: missing {', '.join(c.name for c in report.missing)}\n"
        )
    return EXIT_MISSING if report.missing else 0


if __name__ == "__main__":
    sys.exit(main())
