"""Build step that carries share/{examples,schema,docs,systemd} into the wheel as
pilotkit/_share/ (package data), so a user who installs only the wheel has them:
``pilotkit examples``, ``pilotkit docs``, ``pilotkit daemon --systemd-unit``. Everything
else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHARED = ("examples", "schema", "docs", "systemd")  # pilotkit.resources.SHARED


class BuildPyWithShare(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads share/ in the checkout
        source = Path(__file__).resolve().parent / "share"
        target = Path(self.build_lib) / "pilotkit" / "_share"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".venv")
        for name in SHARED:
            shutil.copytree(source / name, target / name, dirs_exist_ok=True, ignore=ignore)


setup(cmdclass={"build_py": BuildPyWithShare})
