"""``pilotkit examples`` and ``pilotkit docs``: the files pilotkit ships, for a user who
installed only the wheel."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ..errors import PilotkitError
from ..resources import shared


@click.command()
@click.argument("directory", required=False, default="pilotkit-examples",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that are already there.")
def examples(directory: Path, force: bool) -> None:
    """Copy the example specs and scripts to DIRECTORY (default ./pilotkit-examples).

    \b
    Then: pilotkit run DIRECTORY/scan.toml
    Files already in DIRECTORY are never overwritten without --force.
    """
    source = shared("examples")
    files = sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    clashes = [p.relative_to(source) for p in files if (directory / p.relative_to(source)).exists()]
    if clashes and not force:
        shown = ", ".join(str(c) for c in clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise PilotkitError(f"{directory}: {shown} already there; pass --force to overwrite")
    try:
        for path in files:
            target = directory / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    except OSError as exc:
        raise PilotkitError(f"cannot copy the examples to {directory}: {exc.strerror or exc}") from None
    click.echo(f"copied {len(files)} files to {directory}/")
    click.echo(f"next: pilotkit run {directory / 'scan.toml'}")


@click.command()
@click.argument("name", required=False)
@click.option("--path", "print_path", is_flag=True, help="Print where the document is instead of its text.")
def docs(name: str | None, print_path: bool) -> None:
    """Print one of pilotkit's documents (plugins, api, tui), or list them."""
    folder = shared("docs")
    available = sorted(p.stem for p in folder.glob("*.md"))
    if name is None:
        for stem in available:
            click.echo(f"{stem:10} {folder / (stem + '.md')}")
        return
    path = folder / f"{name.removesuffix('.md')}.md"
    if not path.is_file():
        raise PilotkitError(f"no document '{name}'; there are: {', '.join(available)}")
    click.echo(str(path) if print_path else path.read_text(encoding="utf-8"), nl=print_path)
