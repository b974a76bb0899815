"""Per-node panel: a virtual table of nodes (CPU and memory bars, GPU utilisation with its
history, GPU memory; N/A where a reading is unsupported) and the selected node's details
(a history line for its CPU, memory and each GPU)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ..format import NA, Palette, bar, percent, size_pair, spark
from ..model import NodeView, PilotView
from . import palette_of
from .virtual import VirtualTable

BAR = 8
SPARK = 10


class NodeTable(VirtualTable):
    COLUMNS: ClassVar[tuple[tuple[str, int], ...]] = (
        ("Node", 12), ("Cores", 5), ("CPU", 13), ("Memory", 23), ("GPUs", 4), ("GPU util", 15),
        ("GPU memory", 15),
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pilot: PilotView | None = None
        self._names: list[str] = []
        self._nodes_version = -1

    def row_count(self) -> int:
        return len(self._names)

    def row_key(self, i: int) -> str:
        return self._names[i]

    def _node(self, i: int) -> NodeView:
        assert self.pilot is not None
        return self.pilot.nodes[self._names[i]]

    def row_identity(self, i: int) -> Hashable:
        node = self._node(i)
        return (node.name, node.version)

    def row_cells(self, i: int) -> Sequence[Text | str]:
        return node_cells(self._node(i), palette_of(self))

    @property
    def selected(self) -> str | None:
        return self.cursor_key

    def sync(self, pilot: PilotView) -> bool:
        """Pick up new nodes; True when anything changed (rows render when shown)."""
        if pilot is not self.pilot:
            self.pilot = pilot
            self._names = []
            self._nodes_version = -1
            self._cursor_key = None
            self.cursor = 0
        if pilot.nodes_version == self._nodes_version:
            return False
        self._nodes_version = pilot.nodes_version
        if len(pilot.nodes) != len(self._names):
            self._names = list(pilot.nodes)
            self.rows_changed()
        else:
            self.refresh()
        return True


def node_cells(node: NodeView, p: Palette) -> tuple[Text, ...]:
    name = Text(node.name, no_wrap=True, overflow="ellipsis")
    if node.lost:
        name.stylize(Style(color=p.failed, strike=True))
    elif not node.ready:
        name.stylize(Style(color=p.muted))
    cpu_now = node.cpu_now
    if cpu_now is None:
        cpu = Text(NA, style=p.muted)
    else:
        cpu = bar(cpu_now / 100, BAR, p.accent, p)
        cpu.append(f" {percent(cpu_now)}")
    used, total = node.memory_used, node.memory_total
    if used is None:
        mem = Text(NA, style=p.muted)
    else:
        mem = bar(used / total if total else None, BAR, p.accent, p)
        mem.append(f" {size_pair(used, total)}")
    if not node.gpus:
        gpu = Text("-", style=p.muted)
        gmem = Text("-", style=p.muted)
    else:
        util = node.gpu_util()
        gpu = Text(spark(node.gpu_util_history(), SPARK), style=Style(color=p.done), no_wrap=True)
        gpu.append(f" {percent(util)}", Style(color=p.muted) if util is None else Style())
        g_used, g_total = node.gpu_memory()
        gmem = Text(size_pair(g_used, g_total), style=p.muted if g_used is None else "")
    return (
        name,
        Text(str(node.cores) if node.cores is not None else NA, justify="right"),
        cpu,
        mem,
        Text(str(len(node.gpus)), justify="right"),
        gpu,
        gmem,
    )


class NodeDetail(Static):
    """The selected node: CPU and memory history, and each GPU's."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self._key: tuple[object, ...] = ()

    def show(self, node: NodeView | None) -> None:
        p = palette_of(self)
        key = (node.name, node.version, self.size.width, p) if node is not None else (p,)
        if key == self._key:
            return
        self._key = key
        if node is None:
            self.update(Text("no node selected", style=p.muted), layout=False)
            return
        width = max(8, self.content_region.width - 28)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{node.name}", Style(bold=True))
        names = sorted({g.name for g in node.gpus.values() if g.name})
        if names:
            text.append(f"  {', '.join(names)}", Style(color=p.muted))
        if node.lost:
            text.append(f"  lost: {node.lost}", Style(color=p.failed))
        text.append("\n")
        text.append("CPU    ")  # the labels are 7 wide, the readings up to 21
        text.append(spark(node.cpu, width), Style(color=p.accent))
        text.append(f" {percent(node.cpu_now)}\n")
        text.append("memory ")
        text.append(spark(node.mem, width), Style(color=p.accent))
        text.append(f" {size_pair(node.memory_used, node.memory_total)}")
        if not node.gpus:
            reason = node.gpu_reason or "no GPU"
            text.append(f"\nGPUs   {reason}", Style(color=p.muted))
        for i, g in enumerate(node.gpus.values()):
            text.append(f"\nGPU{i:<3} ")
            text.append(spark(g.utilization, width), Style(color=p.done))
            text.append(f" {percent(g.util_now)} ")
            text.append(size_pair(g.memory_used, g.memory_total))
        self.update(text, layout=False)
