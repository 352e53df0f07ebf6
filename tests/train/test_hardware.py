"""Precision, optimiser and thread choices: decided by robench.hardware, recorded in run.json."""

from __future__ import annotations

import json

import pytest
import torch

import robench.hardware as hw
from robench.errors import ConfigError
from robench.train import TrainConfig, train


def test_auto_precision_is_bf16_only_where_native(monkeypatch):
    monkeypatch.setattr(hw, "native_bf16", lambda device="cpu": True)
    assert hw.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hw, "native_bf16", lambda device="cpu": False)
    assert hw.resolve_precision("auto", "cpu") == "fp32"  # falls back: emulated bf16 is slower than fp32
    assert hw.resolve_precision("fp32", "cpu") == "fp32" and hw.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="no native bf16"):
        hw.resolve_precision("bf16", "cuda")
    with pytest.raises(ConfigError, match="use auto, fp32 or bf16"):
        hw.resolve_precision("fp16", "cpu")


def test_fused_adamw_where_supported_else_foreach(monkeypatch):
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt, impl = hw.make_adamw(params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, device="cpu")
    assert impl == ("fused" if hw.fused_adamw_supported("cpu") else "foreach")
    assert opt.defaults["fused"] == (impl == "fused")
    monkeypatch.setattr(hw, "fused_adamw_supported", lambda device="cpu": False)
    opt, impl = hw.make_adamw(params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, device="cpu")
    assert impl == "foreach" and not opt.defaults["fused"]
    with pytest.raises(ConfigError, match="fused AdamW is not available"):
        hw.make_adamw(params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, device="cpu", fused=True)


def test_fused_and_default_adamw_take_the_same_step():
    torch.manual_seed(0)
    if not hw.fused_adamw_supported("cpu"):
        pytest.skip("this torch build has no fused CPU AdamW")
    a = torch.nn.Parameter(torch.randn(64))
    b = torch.nn.Parameter(a.detach().clone())
    fused, _ = hw.make_adamw([a], lr=1e-2, betas=(0.9, 0.98), eps=1e-6, device="cpu", fused=True)
    plain, _ = hw.make_adamw([b], lr=1e-2, betas=(0.9, 0.98), eps=1e-6, device="cpu", fused=False)
    for _ in range(5):
        g = torch.randn(64)
        a.grad, b.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("native", [True, False])
def test_run_json_records_precision_and_optimiser(tmp_path, monkeypatch, native):
    import robench.train as tr

    monkeypatch.setattr(tr, "native_bf16", lambda device="cpu": native)
    monkeypatch.setattr(hw, "native_bf16", lambda device="cpu": native)
    run = train(TrainConfig(model="tiny-bert", limit=32, epochs=1, batch_size=16, precision="auto", device="cpu",
                            out=str(tmp_path / "run")))
    training = json.loads((run / "run.json").read_text())["training"]
    assert training["precision"] == ("bf16" if native else "fp32")
    assert training["precision_requested"] == "auto" and training["native_bf16"] is native
    assert training["optimizer"] == f"AdamW ({'fused' if hw.fused_adamw_supported('cpu') else 'foreach'})"
    assert training["torch_threads"] == hw.usable_cores()


def test_threads_never_exceed_the_usable_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert hw.usable_cores() == 1 and hw.size_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(hw, "_cgroup_cpus", lambda: 0.5)  # a quota under one core still gets one thread
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert hw.usable_cores() == 1
    finally:
        torch.set_num_threads(before)


def test_loss_terms_stay_on_the_device_until_read():
    from robench.methods.diagnostics import TermMeans

    terms = TermMeans()
    terms.add(ce=torch.tensor(1.0), reg=torch.tensor(3.0))
    terms.add(ce=torch.tensor(2.0), reg=0.5)
    assert torch.is_tensor(terms.sums["ce"])  # no host read per step
    state = terms.state_dict()
    assert state["sums"] == {"ce": 3.0, "reg": 3.5}
    assert terms.flush() == {"ce": 1.5, "reg": 1.75}
