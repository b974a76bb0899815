"""pilotkit's contract tests for container runtime plugins."""

from __future__ import annotations

import pytest
from pilotkit_oci import OciRuntime

from pilotkit.api import ContainerRuntime
from pilotkit.testing.contracts import RuntimeContract


class TestContract(RuntimeContract):
    @pytest.fixture
    def runtime_cls(self) -> type[ContainerRuntime]:
        return OciRuntime
