"""Every known mutation of the methods' update rules fails some test of tests/methods (mutants.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_every_known_mutation_is_killed():
    script = Path(__file__).with_name("mutants.py")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutants", script)
    mutants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutants)
    assert len(mutants.MUTATIONS) >= 9  # the RAM epsilons' two among them
    assert done.stdout.count(": killed") == len(mutants.MUTATIONS) and "SURVIVED" not in done.stdout, done.stdout
