"""Adversarial attacks: offline import, recipes (hub ones fail fast offline; the stock list tracks
TextAttack's), model wrapper, resumable runner and its log, evaluator, WordNet check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_line

from robench.errors import ConfigError, OfflineError

OFFLINE_SCRIPT = textwrap.dedent(
    r"""
    import json, socket, sys
    calls = []
    def refuse(*args, **kwargs):
        calls.append(("socket", repr(args)[:80]))
        raise OSError("network disabled by test")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    import nltk
    def no_nltk(*args, **kwargs):
        calls.append(("nltk.download", repr(args)))
        raise RuntimeError("nltk.download called")
    nltk.download = no_nltk

    from robench.attacks.offline import import_textattack
    ta = import_textattack()
    import textattack.shared.utils as tu
    import textattack.shared.utils.install as ti
    def no_s3(*args, **kwargs):
        calls.append(("download_from_s3", repr(args)))
        raise RuntimeError("textattack download called")
    for mod in (tu, ti):
        mod.download_from_s3 = no_s3
        mod.download_from_url = no_s3
        mod.http_get = no_s3
    import textattack.shared.word_embeddings as we
    we.utils.download_from_s3 = no_s3

    from robench.attacks.recipes import build_attack
    from robench.attacks.runner import attack_one
    from robench.attacks.wrapper import RobenchModelWrapper
    from robench.models import load_model, load_tokenizer

    model = load_model("tiny-bert", num_labels=2, seed=0).eval()
    wrapper = RobenchModelWrapper(model, load_tokenizer("tiny-bert"), max_length=64)
    text = "a wonderful moving film with superb acting and a clever plot that never drags at all"
    label = int(wrapper([text])[0].argmax())
    outcomes = {}
    for name in ("deepwordbug", "textfooler", "pwws"):
        attack = build_attack(name, wrapper, query_budget=200,
                              vocab_size=3000 if name == "textfooler" else None)
        outcomes[name] = attack_one(attack, text, label, seed=0, index=0)["outcome"]
    from nltk.corpus import wordnet
    print(json.dumps({"calls": calls, "outcomes": outcomes, "wordnet": wordnet.get_version()}))
    """
)


def test_offline_import_and_recipes_attempt_no_download(tmp_path):
    env = {**os.environ, "ROBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("TA_CACHE_DIR", None)
    env.pop("NLTK_DATA", None)
    proc = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["calls"] == []
    assert report["wordnet"] == "3.0"
    assert set(report["outcomes"]) == {"deepwordbug", "textfooler", "pwws"}
    locks = sorted(p.name for p in (tmp_path / "cache").rglob("*.lock"))
    assert set(locks) <= {"post_install_check_3.lock"}, locks  # no half-done download left a lock
    assert (tmp_path / "cache" / "textattack" / "post_install_check_3").exists()


def test_attack_benchmark_counts_the_victims_flops_as_torch_does(tiny_model):
    """benchmarks/bench_attack.py's FLOPs per batch shape (its victim GFLOP/s and share of the roof) agree with
    torch's own FLOP counter on the model's forward pass; without the attention term they would not."""
    import importlib.util

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_attack.py"
    spec = importlib.util.spec_from_file_location("bench_attack", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import copy

    config = copy.deepcopy(tiny_model.config)
    config._attn_implementation = "eager"  # torch's FLOP counter does not see the CPU's fused attention kernel
    model = type(tiny_model)(config).eval()
    assert type(model.bert.encoder.layer[0].attention.self).__name__ == "BertSelfAttention"
    for n, length in ((2, 12), (3, 120)):
        ids = torch.randint(5, 100, (n, length))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        counted = counter.get_total_flops()
        assert module.encoder_flops(model.config, [(n, length)]) == pytest.approx(counted, rel=0.02)
    # attention's share grows with the length: at 120 tokens it is far more than the 2% tolerance
    h, layers = model.config.hidden_size, model.config.num_hidden_layers
    assert 4 * layers * 120 * h * 3 * 120 > 0.1 * module.encoder_flops(model.config, [(3, 120)])
    assert module.encoder_flops(model.config, [(2, 12), (3, 120)]) == pytest.approx(
        module.encoder_flops(model.config, [(2, 12)]) + module.encoder_flops(model.config, [(3, 120)]))


def test_unknown_recipe_is_one_clear_error(tiny_model, tokenizer):
    from robench.attacks.recipes import build_attack
    from robench.attacks.wrapper import RobenchModelWrapper
    from robench.errors import ConfigError

    wrapper = RobenchModelWrapper(tiny_model, tokenizer)
    with pytest.raises(ConfigError, match="unknown attack recipe 'nope'.*offline: deepwordbug"):
        build_attack("nope", wrapper)


def test_wrapper_pads_to_batch_longest_and_caches(tiny_model, tokenizer):
    from robench.attacks.wrapper import RobenchModelWrapper
    from robench.predict import predict

    texts = ["short", "a somewhat longer sentence with several words in it", "medium length text here", "tiny"]
    wrapper = RobenchModelWrapper(tiny_model.eval(), tokenizer, max_length=64, batch_size=2)
    logits = wrapper(texts)
    assert logits.shape == (4, 2)
    lengths = sorted((len(tokenizer(t)["input_ids"]) for t in texts), reverse=True)
    # sorted by length, batches of 2: each batch is padded to its own longest, not to max_length
    assert wrapper.last_padded_lengths == [lengths[0], lengths[2]]
    assert wrapper.forward_shapes == [(2, lengths[0]), (2, lengths[2])]  # what the attack benchmark counts FLOPs from
    assert wrapper.forward_texts == 4 and wrapper.forward_seconds > 0
    again = wrapper(list(reversed(texts)) + [texts[0]])
    assert wrapper.forward_texts == 4  # all served from the cache
    np.testing.assert_allclose(again[::-1][1:], logits, atol=0)
    assert len(wrapper.forward_shapes) == 2
    wrapper(["something new"])
    assert wrapper.forward_texts == 5 and len(wrapper.forward_shapes) == 3
    ref = predict(tiny_model, tokenizer, texts, max_length=64).logits
    np.testing.assert_allclose(logits, ref, atol=1e-5)


def _strip_time(metrics):
    return {k: v for k, v in metrics.items() if k != "seconds_per_example"}


def _strip_record(rec):
    return {k: v for k, v in rec.items() if k != "seconds"}


def test_interrupted_attack_resumes_to_the_same_result(tiny_run, tmp_path):
    from robench.evaluation import make_context
    from robench.evaluators.adversarial import attack_recipe

    ctx = make_context(tiny_run, device="cpu")
    full, full_recs, _ = attack_recipe(ctx, "deepwordbug", n=6, seed=3, query_budget=None,
                                       log_path=tmp_path / "full.jsonl")
    assert full["num_examples"] == 6
    log = tmp_path / "resumed.jsonl"
    part, part_recs, _ = attack_recipe(ctx, "deepwordbug", n=6, seed=3, query_budget=None, log_path=log,
                                       max_examples=3)
    assert len(part_recs) == 3
    # tear the last line, as a kill in mid-write would
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    resumed, resumed_recs, _ = attack_recipe(ctx, "deepwordbug", n=6, seed=3, query_budget=None, log_path=log)
    assert [_strip_record(r) for r in resumed_recs] == [_strip_record(r) for r in full_recs]
    assert _strip_time(resumed) == _strip_time(full)
    # a finished log is reused as is: no example is attacked again
    again, again_recs, _ = attack_recipe(ctx, "deepwordbug", n=6, seed=3, query_budget=None, log_path=log)
    assert [r["seconds"] for r in again_recs] == [r["seconds"] for r in resumed_recs]
    # other settings start a fresh log and keep the old one aside
    attack_recipe(ctx, "deepwordbug", n=2, seed=3, query_budget=None, log_path=log)
    assert log.with_name(log.name + ".stale").exists()


def test_summary_metrics_follow_textattack():
    from robench.attacks.runner import summarize

    recs = [
        {"outcome": "successful", "words_changed": 1, "num_words": 4, "queries": 10, "seconds": 1.0},
        {"outcome": "failed", "words_changed": 0, "num_words": 5, "queries": 30, "seconds": 1.0},
        {"outcome": "skipped", "words_changed": 0, "num_words": 5, "queries": 1, "seconds": 0.0},
        {"outcome": "successful", "words_changed": 2, "num_words": 4, "queries": 20, "seconds": 2.0},
    ]
    m = summarize(recs)
    assert m["original_accuracy"] == 0.75
    assert m["accuracy_under_attack"] == 0.25
    assert m["attack_success_rate"] == pytest.approx(2 / 3)
    assert m["avg_perturbed_word_pct"] == pytest.approx(37.5)
    assert m["avg_num_queries"] == pytest.approx(20.0)
    assert (m["num_successful"], m["num_failed"], m["num_skipped"]) == (2, 1, 1)


def test_wordnet_missing_gives_one_clear_line(monkeypatch, tmp_path, tiny_model, tokenizer):
    from robench import assets
    from robench.attacks.recipes import build_attack
    from robench.attacks.resources import require_wordnet
    from robench.attacks.wrapper import RobenchModelWrapper
    from robench.errors import AssetMissingError

    monkeypatch.setitem(assets.ASSETS, "wordnet",
                        assets.Asset("wordnet", None, "", "WordNet 3.0 (Debian)", assets.APT_FIX,
                                     system_dir=str(tmp_path / "no-wordnet")))
    with pytest.raises(AssetMissingError) as err:
        require_wordnet()
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install wordnet-base wordnet-sense-index" in msg
    with pytest.raises(AssetMissingError, match="apt-get install wordnet-base wordnet-sense-index"):
        build_attack("pwws", RobenchModelWrapper(tiny_model, tokenizer))


def test_attack_log_lines_that_are_not_records_are_dropped(tmp_path):
    from robench.attacks.runner import read_log

    log = tmp_path / "attack.jsonl"
    header = {"type": "header", "recipe": "x"}
    ok = {"type": "example", "index": 0}
    for bad in (b"[1, 2]\n", b"\"text\"\n", b"{\"type\": \"example\", \"index\": \xff\xfe}\n"):
        log.write_bytes((json.dumps(header) + "\n" + json.dumps(ok) + "\n").encode() + bad
                        + (json.dumps({"type": "example", "index": 1}) + "\n").encode())
        got_header, records = read_log(log)
        assert got_header == header and records == [ok]




def test_hub_recipe_offline_fails_fast(monkeypatch):
    import robench.hub as hub
    from robench.attacks.recipes import OFFLINE_RECIPES, build_attack

    hub.hub_reachable.cache_clear()
    monkeypatch.setattr(hub.socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("no net")))
    try:
        start = time.perf_counter()
        with pytest.raises(OfflineError, match="attack recipe 'bae' needs internet") as info:
            build_attack("bae", None)
        assert time.perf_counter() - start < 2.0
        assert all(name in one_line(info.value) for name in OFFLINE_RECIPES)
        with pytest.raises(ConfigError, match="unknown attack recipe 'nosuch'"):
            build_attack("nosuch", None)
    finally:
        hub.hub_reachable.cache_clear()


def test_stock_recipe_list_matches_textattack():
    from robench.attacks.offline import import_textattack
    from robench.attacks.recipes import STOCK_RECIPES

    assert set(STOCK_RECIPES) == set(import_textattack().attack_args.ATTACK_RECIPE_NAMES)
