import os
import sys

import pytest

import uss  # noqa: F401  (sets jittor's environment before any test imports it)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def project_root() -> str:
    return ROOT


@pytest.fixture
def python() -> str:
    return sys.executable
