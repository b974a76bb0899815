"""The pilot spec: a strict, typed TOML file.

Core sections are msgspec Structs that forbid unknown fields. The ``provider``,
``image``, ``container`` and ``app`` sections each have a selector key (``type``,
``stager``, ``runtime``) and take the selected plugin's own options in the same table;
those are checked against the plugin's ``Options`` struct.

:func:`load_spec` reports *every* problem at once, each naming the file, the dotted key,
the line where known, and the nearest valid key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec

from .errors import PluginError, SpecError, SpecProblem
from .units import parse_duration, parse_size

if typing.TYPE_CHECKING:
    from .interfaces import App, ContainerRuntime, Provider, Stager
    from .plugins import Plugins

Duration = Annotated[
    str | float,
    msgspec.Meta(
        description="Seconds, or text such as '90s', '10m', '1h30m', '01:30:00'.",
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
    """Where task dirs, logs and results go. Default: ./pilotkit-runs/<name>-<time>."""
    heartbeat: Duration = "8s"
    heartbeat_timeout: Duration = "16s"


class PilotSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A whole pilot spec, as in a TOML file."""

    name: str
    description: str = ""
    env: dict[str, str] = {}
    provider: ProviderSection = msgspec.field(default_factory=ProviderSection)
    resources: Resources = msgspec.field(default_factory=Resources)
    image: ImageSection | None = None
    container: ContainerSection | None = None
    pilot: PilotSection = msgspec.field(default_factory=PilotSection)
    app: AppSection = msgspec.field(default_factory=AppSection)


# Which sections hold plugin options inline, and the key that picks the plugin.
_PLUGGABLE = {"provider": "type", "image": "stager", "container": "runtime", "app": "type"}


@dataclass
class ResolvedSpec:
    """A valid spec with its plugins looked up and their options typed."""

    spec: PilotSpec
    source: Path | None
    provider_cls: type[Provider]
    provider_options: Any
    app_cls: type[App]
    app_options: Any
    runtime_cls: type[ContainerRuntime] | None = None
    runtime_options: Any = None
    stager_cls: type[Stager] | None = None
    stager_options: Any = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def base_dir(self) -> Path:
        return self.source.parent.resolve() if self.source else Path.cwd()

    def seconds(self, value: str | float | None) -> float | None:
        return None if value is None else parse_duration(value)

    @property
    def walltime(self) -> float | None:
        return self.seconds(self.spec.resources.walltime)

    @property
    def memory(self) -> int | None:
        m = self.spec.resources.memory
        return None if m is None else parse_size(m)


# ---------------------------------------------------------------------- loading


def load_spec(path: str | Path, plugins: Plugins | None = None) -> ResolvedSpec:
    """Read, check and resolve a spec file; raise SpecError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError([SpecProblem("", "no such file", file=str(path))]) from None
    except OSError as exc:
        raise SpecError([SpecProblem("", f"cannot read: {exc.strerror}", file=str(path))]) from None
    return parse_spec(text, path, plugins)


def parse_spec(text: str, path: str | Path | None = None, plugins: Plugins | None = None) -> ResolvedSpec:
    if plugins is None:
        from .plugins import get_plugins

        plugins = get_plugins()
    fname = str(path) if path is not None else "<spec>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        raise SpecError([SpecProblem("", f"not valid TOML: {message}", file=fname, line=line)]) from None
    lines = KeyLines(text)
    checker = _Checker(fname, lines)
    resolved = checker.resolve(data, plugins, Path(path) if path is not None else None)
    problems: list[SpecProblem] = list(checker.problems)
    if resolved is None:
        raise SpecError(problems)
    for cls in (resolved.provider_cls, resolved.app_cls, resolved.runtime_cls, resolved.stager_cls):
        if cls is not None:
            for problem in cls.check(resolved):
                problem.file = problem.file or fname
                if problem.line is None:
                    problem.line = lines.find(problem.key)
                problems.append(problem)
    if problems:
        raise SpecError(problems)
    return resolved


class _Checker:
    def __init__(self, fname: str, lines: KeyLines) -> None:
        self.fname = fname
        self.lines = lines
        self.problems: list[SpecProblem] = []
        self.fatal = False
        """A problem that stops resolution (a missing required key, an unknown plugin)."""

    def problem(self, key: str, message: str, suggestion: str | None = None, *, fatal: bool = True) -> None:
        self.fatal = self.fatal or fatal
        self.problems.append(
            SpecProblem(key, message, file=self.fname, line=self.lines.find(key), suggestion=suggestion)
        )

    def resolve(self, data: dict[str, Any], plugins: Plugins, path: Path | None) -> ResolvedSpec | None:
        # Split pluggable sections into core keys and plugin options.
        plugin_classes: dict[str, Any] = {}
        kinds = {"provider": "providers", "image": "stagers", "container": "runtimes", "app": "apps"}
        for section, selector in _PLUGGABLE.items():
            table = data.get(section)
            if table is None:
                if section in ("provider", "app"):
                    table = data[section] = {}
                else:
                    continue
            if not isinstance(table, dict):
                self.problem(section, f"expected a table, got {_tname(table)}")
                data.pop(section)
                continue
            core_cls: Any = {
                "provider": ProviderSection,
                "image": ImageSection,
                "container": ContainerSection,
                "app": AppSection,
            }[section]
            core_keys = {f.name for f in msgspec.structs.fields(core_cls)} - {"options"}
            ident = table.get(selector)
            cls: Any = None
            if section == "image" and ident is None and isinstance(table.get("ref"), str):
                cls = plugins.stager_for(table["ref"])
                if cls is None:
                    self.problem(f"{section}.ref", f"no stager handles '{table['ref']}'; set image.stager")
            elif ident is None and section in ("provider", "app"):
                ident = "local" if section == "provider" else "tasks"
            if ident is not None:
                if not isinstance(ident, str):
                    self.problem(f"{section}.{selector}", f"expected a string, got {_tname(ident)}")
                else:
                    try:
                        cls = plugins.get(kinds[section], ident)
                    except PluginError as exc:
                        self.problem(f"{section}.{selector}", str(exc))
            plugin_classes[section] = cls
            options_cls = cls.Options if cls is not None else None
            options = {k: v for k, v in table.items() if k not in core_keys}
            core = {k: v for k, v in table.items() if k in core_keys}
            if cls is None:
                # Plugin unknown: we cannot judge its keys; skip them.
                options = {}
            else:
                self.check_struct(options_cls, options, section, extra_known=core_keys)
            core["options"] = options
            data[section] = core
        self.check_struct(PilotSpec, data, "")
        if self.fatal:
            return None
        # Bad optional keys were dropped: go on, so later checks report their problems too.
        try:
            spec = msgspec.convert(data, PilotSpec)
        except msgspec.ValidationError:
            return None
        resolved = ResolvedSpec(
            spec=spec,
            source=path,
            provider_cls=plugin_classes["provider"],
            provider_options=msgspec.convert(spec.provider.options, plugin_classes["provider"].Options),
            app_cls=plugin_classes["app"],
            app_options=msgspec.convert(spec.app.options, plugin_classes["app"].Options),
        )
        if spec.container is not None and plugin_classes.get("container") is not None:
            resolved.runtime_cls = plugin_classes["container"]
            resolved.runtime_options = msgspec.convert(spec.container.options, resolved.runtime_cls.Options)
            from .interfaces import Bind

            for i, bind in enumerate(spec.container.binds):
                try:
                    Bind.parse(bind)
                except ValueError as exc:
                    self.problem(f"container.binds[{i}]", str(exc))
        if spec.image is not None and plugin_classes.get("image") is not None:
            resolved.stager_cls = plugin_classes["image"]
            resolved.stager_options = msgspec.convert(spec.image.options, resolved.stager_cls.Options)
        if spec.image is not None and spec.container is None:
            self.problem("container", "an image is set but no [container] runtime to run it with")
        if self.fatal:
            return None
        return resolved

    def check_struct(
        self, cls: Any, data: Any, prefix: str, extra_known: set[str] | frozenset[str] = frozenset()
    ) -> None:
        """Check ``data`` against struct ``cls``, recording every problem."""
        if not isinstance(data, dict):
            self.problem(prefix, f"expected a table, got {_tname(data)}")
            return
        fields = {f.name: f for f in msgspec.structs.fields(cls)}
        known = sorted(set(fields) | set(extra_known))
        for key, value in list(data.items()):
            dotted = f"{prefix}.{key}" if prefix else key
            field = fields.get(key)
            if field is None:
                if key in extra_known:
                    continue
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                self.problem(dotted, "unknown key", suggestion=close[0] if close else None, fatal=False)
                del data[key]
                continue
            if not self.check_value(field.type, value, dotted) and not field.required:
                del data[key]  # reported; carry on with the default
        for name, field in fields.items():
            if field.required and name not in data:
                self.problem(f"{prefix}.{name}" if prefix else name, "required key is missing")

    def check_value(self, tp: Any, value: Any, dotted: str) -> bool:
        """Record the problems of one value; False when it is unusable as it stands.
        Tables are mended in place (their bad optional keys dropped)."""
        struct = _struct_of(tp)
        if struct is not None and isinstance(value, dict):
            # A table whose own required keys are bad cannot be built: fatal.
            self.check_struct(struct, value, dotted)
            return True
        item = _list_struct_of(tp)
        if item is not None and isinstance(value, list):
            for i, element in enumerate(value):
                self.check_value(item, element, f"{dotted}[{i}]")
            return True
        try:
            msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            self.problem(dotted, _clean(str(exc)), fatal=False)
            return False
        unit = _unit_of(tp)
        if unit is not None and value is not None:
            try:
                (parse_duration if unit == "duration" else parse_size)(value)
            except ValueError as exc:
                self.problem(dotted, str(exc), fatal=False)
                return False
        return True


def _tname(value: Any) -> str:
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
    }.get(type(value), type(value).__name__)


_TYPE_WORDS = {
    "int": "an integer",
    "str": "a string",
    "float": "a number",
    "bool": "a boolean",
    "array": "an array",
    "object": "a table",
    "null": None,
}


def _clean(message: str) -> str:
    message = re.sub(r" - at `\$[^`]*`$", "", message)
    match = re.fullmatch(
        r"Expected `([^`]*)`(?P<bound>(?: [<>]=? [^,]+)*)(?:, got `(?P<got>[^`]*)`)?", message
    )
    if match:
        wanted = [_TYPE_WORDS.get(t.strip(), t.strip()) for t in match.group(1).split("|")]
        words = " or ".join(w for w in wanted if w) + (match.group("bound") or "")
        if match.group("got") is None:
            return f"expected {words}"
        got = _TYPE_WORDS.get(match.group("got"), match.group("got")) or "nothing"
        return f"expected {words}, got {got}"
    return message.replace("`", "'")


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_args(tp: Any) -> tuple[Any, ...]:
    tp = _strip_annotated(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType"):
        return typing.get_args(tp)
    import types

    if isinstance(tp, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _struct_of(tp: Any) -> Any:
    for arg in _union_args(tp):
        arg = _strip_annotated(arg)
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
    return None


def _list_struct_of(tp: Any) -> Any:
    for arg in _union_args(tp):
        arg = _strip_annotated(arg)
        if typing.get_origin(arg) is list:
            (item,) = typing.get_args(arg)
            if _struct_of(item) is not None:
                return item
    return None


def _unit_of(tp: Any) -> str | None:
    candidates = [tp]
    if typing.get_origin(tp) is not Annotated:
        candidates += list(typing.get_args(tp))
    for arg in candidates:
        if typing.get_origin(arg) is Annotated:
            for meta in typing.get_args(arg)[1:]:
                if isinstance(meta, msgspec.Meta) and meta.extra and "pilotkit" in meta.extra:
                    return str(meta.extra["pilotkit"])
    return None


# ---------------------------------------------------------------------- line numbers


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-\.]+)\s*=""")


class KeyLines:
    """Maps dotted keys (``app.groups[1].cores``) to the line that sets them.

    A light scan of the TOML text: table headers, arrays of tables and ``key =`` lines.
    Keys inside inline tables resolve to the line of their parent key.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        counts: dict[str, int] = {}
        table = ""
        for lineno, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                name = ".".join(_unquote(p) for p in header.group(2).split("."))
                # Parent arrays of tables: resolve to their latest element.
                name = self._with_indexes(name, counts)
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    table = f"{name}[{index}]"
                else:
                    table = name
                self.lines.setdefault(table, lineno)
                continue
            key = _KEY.match(line)
            if key:
                dotted = ".".join(_unquote(p) for p in key.group(1).split("."))
                full = f"{table}.{dotted}" if table else dotted
                self.lines.setdefault(full, lineno)

    def _with_indexes(self, name: str, counts: dict[str, int]) -> str:
        parts = name.split(".")
        out: list[str] = []
        for part in parts[:-1]:
            out.append(part)
            joined = ".".join(out)
            if joined in counts:
                out[-1] = f"{part}[{counts[joined] - 1}]"
        out.append(parts[-1])
        return ".".join(out)

    def find(self, dotted: str) -> int | None:
        key = dotted
        while key:
            if key in self.lines:
                return self.lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            if cut <= 0:
                break
            key = key[:cut]
        return self.lines.get(key) if key else None


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


def json_schema() -> dict[str, Any]:
    """The JSON schema of spec files. Plugin sections (provider, image, container, app)
    take the selected plugin's options inline, so they allow extra keys; each plugin's
    own options have a schema of their own (:func:`options_schema`)."""
    schema = msgspec.json.schema(PilotSpec)
    for name, defn in schema.get("$defs", {}).items():
        if name in ("ProviderSection", "ImageSection", "ContainerSection", "AppSection"):
            defn["properties"].pop("options", None)
            defn["additionalProperties"] = True
            defn["description"] = (defn.get("description", "") + " Other keys: the plugin's options.").strip()
    schema["title"] = "pilotkit pilot spec"
    return schema


def options_schema(cls: type[Any]) -> dict[str, Any]:
    """The JSON schema of one plugin's inline options."""
    schema = msgspec.json.schema(cls.Options)
    schema["title"] = f"{cls.id} options"
    return schema
