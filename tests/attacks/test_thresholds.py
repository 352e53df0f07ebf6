"""The valid preset's thresholds are derived from the stored reference data (benchmarks/derive_thresholds.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "derive_thresholds.py"


def _module():
    spec = importlib.util.spec_from_file_location("derive_thresholds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_word_threshold_rule_on_hand_made_pairs():
    derive = _module().derive_word_threshold
    # (cosine, rating): similar (>= 7) pairs sit at high cosines, dissimilar ones below 0.6
    pairs = [(0.95, 9.0), (0.93, 8.0), (0.91, 2.0), (0.9, 7.5), (0.7, 8.0), (0.6, 1.0), (0.5, 0.5), (0.4, 3.0)]
    t, precision, recall = derive(pairs)
    # from 0.51 up the admitted pairs are 4 similar of 6 (= 2/3); at 0.50, 4 of 7: the smallest is 0.51
    assert t == pytest.approx(0.51) and precision == pytest.approx(4 / 6) and recall == pytest.approx(1.0)
    # the rule reads the ratings the right way round: with the ratings inverted no threshold reaches 2/3 early
    inverted = [(c, 10 - r) for c, r in pairs]
    assert derive(inverted)[0] > 0.9


def test_sentence_threshold_keeps_nine_in_ten_positives():
    derive = _module().derive_sentence_threshold
    sims = np.r_[np.linspace(0.8, 1.0, 100), np.linspace(0.0, 0.5, 100)].astype(np.float32)
    positive = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    t = derive(sims, positive)
    assert t == pytest.approx(0.81) and (sims[positive] >= t).mean() >= 0.9
    assert derive(sims, ~positive) < 0.1  # it follows the positives, not the negatives


@pytest.mark.slow
def test_the_constants_are_what_the_reference_data_derive():
    """Runs the derivation on the stored reference set with the real vectors and MiniLM: exit 0 means the
    constants in robench/attacks/constraints.py equal the derived thresholds."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "word threshold 0.89 (constant 0.89)" in done.stdout and "sentence threshold 0.82" in done.stdout
