"""asyncssh, imported once without the noise of its dependencies.

cryptography 51 and later deprecate DSA, and asyncssh still names DSA types at import:
each import prints about ten ``CryptographyDeprecationWarning`` lines that users would
see on every command that uses SSH. :func:`import_asyncssh` filters exactly that
warning, and only while asyncssh is imported.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType


def import_asyncssh() -> ModuleType:
    """The ``asyncssh`` module (imported on the first call)."""
    module = sys.modules.get("asyncssh")
    if module is not None:
        return module
    with warnings.catch_warnings():
        try:
            from cryptography.utils import CryptographyDeprecationWarning
        except ImportError:  # pragma: no cover - cryptography is asyncssh's own dependency
            pass
        else:
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return importlib.import_module("asyncssh")
