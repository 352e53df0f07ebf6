"""Models beyond the default backbone (robench/models.py): the tiny MPNet's tokenizer has the real MPNet's
layout, and a tiny-MPNet run goes through the trainer, the prediction pass and an attack."""

from __future__ import annotations

import json
import math

import pytest
import torch
from cli_helpers import TINY_MPNET
from conftest import TEXTS


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
