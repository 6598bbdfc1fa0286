"""Every core test runs in an isolated POLYBATCH_HOME with provider credentials cleared, in its
own temporary working directory (the pytest plugin's ``polybatch_home``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(polybatch_home: Path) -> Path:
    return polybatch_home
