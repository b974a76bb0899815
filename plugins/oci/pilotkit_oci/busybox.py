"""A tiny test image: a root filesystem made of Debian's static busybox.

``build_busybox_rootfs(dest)`` lays out ``/bin/busybox`` with one symlink per applet
(``busybox --list``), ``/etc/passwd`` and ``/etc/group``, empty ``/etc/hosts`` and
``/etc/resolv.conf`` (bind targets), and the mount points ``/proc``, ``/dev``, ``/sys``
and ``/tmp``. Tests and the benchmark run containers from it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from pilotkit.api import PilotkitError

BUSYBOX = Path("/bin/busybox")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
PT_INTERP = 3


def is_static(binary: Path) -> bool:
    """Whether an ELF64 executable has no program interpreter (is statically linked)."""
    data = binary.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    endian = "<" if data[5] == 1 else ">"
    phoff = struct.unpack_from(endian + "Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    kinds = (struct.unpack_from(endian + "I", data, phoff + i * phentsize)[0] for i in range(phnum))
    return PT_INTERP not in kinds


def applets(busybox: Path) -> list[str]:
    """The applet names ``busybox --list`` prints."""
    done = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True, timeout=30)
    return [name for name in done.stdout.split() if name and "/" not in name]


def build_busybox_rootfs(dest: Path, busybox: Path = BUSYBOX) -> Path:
    """Build the root filesystem in ``dest`` (created; must be empty if it exists)."""
    if not busybox.is_file():
        raise PilotkitError(f"{busybox} not found (install Debian's busybox-static)")
    if not is_static(busybox):
        raise PilotkitError(f"{busybox} is dynamically linked: install busybox-static")
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise PilotkitError(f"{dest} is not empty")
    for name in ("bin", "etc", "proc", "dev", "sys", "root", "tmp"):
        (dest / name).mkdir()
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for name in applets(busybox):
        link = dest / "bin" / name
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    for name in ("hosts", "resolv.conf"):
        (dest / "etc" / name).touch()
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m pilotkit_oci.busybox DEST``: build the busybox image at DEST."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pilotkit_oci.busybox DEST", file=sys.stderr)
        return 2
    try:
        print(build_busybox_rootfs(Path(args[0])))
    except PilotkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
