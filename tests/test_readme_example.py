"""The README's Python example runs as written (with the packaged MiniLM), from a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs_as_written(tmp_path):
    example = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    assert "robench.evaluate(" in example and "robench.leaderboard(" in example
    done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "ROBENCH_PROGRESS": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'id':" in done.stdout and "my-checkpoint" in done.stdout
    assert (tmp_path / "runs-api" / "my-checkpoint" / "results" / "id.json").is_file()
