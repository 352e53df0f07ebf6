"""Sentence pairs and two-class scoring outside the paper tasks: a pair task read from local files, tokenised
as pairs, perturbed on both sides; ``merge_predictions`` counted exactly as declared; a backbone's tokenizer
prepared for robench's batching (right padding, a padding token)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robench.errors import ConfigError
from robench.tasks import TaskData, load_task

LABELS = ["entailment", "neutral", "contradiction"]


def pair_task(tmp_path: Path, merge: str = "{neutral: contradiction}", rows: int = 12) -> str:
    """A three-class pair task from a local jsonl file; its shift set merges predictions as given."""
    lines = [{"premise": f"premise {i}", "hypothesis": f"hypothesis {i % 3} of {i}", "gold": LABELS[i % 3]}
             for i in range(rows)]
    (tmp_path / "nli.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    two = [{"premise": f"other {i}", "hypothesis": f"claim {i}", "gold": ["entailment", "contradiction"][i % 2]}
           for i in range(4)]
    (tmp_path / "two.jsonl").write_text("".join(json.dumps(r) + "\n" for r in two), encoding="utf-8")
    merge_line = f", merge_predictions: {merge}" if merge else ""
    (tmp_path / "nli.yaml").write_text(f"""name: nli
labels: [{', '.join(LABELS)}]
sources:
  nli: {{file: nli.jsonl, text_column: [premise, hypothesis], label_column: gold,
        partition: {{fractions: {{train: 0.5, validation: 0.25, test: 0.25}}}}}}
  two: {{file: two.jsonl, text_column: [premise, hypothesis], label_column: gold}}
train: {{source: nli, part: train}}
validation: {{source: nli, part: validation}}
test: {{source: nli, part: test}}
shift:
  two: {{source: two{merge_line}}}
""", encoding="utf-8")
    return str(tmp_path / "nli.yaml")


def test_merge_predictions_counts_a_merged_prediction_as_its_target(tmp_path, tiny_run):
    """On hand-set logits: predicted neutral counts as contradiction on the merging set only; without the
    key, or with the mapping inverted, the count differs."""
    from robench.evaluation import EvalContext

    def ctx_for(merge):
        spec = load_task(pair_task(tmp_path, merge))
        return EvalContext(run_dir=tmp_path, run=None, task=spec, data=TaskData(spec, pairs=True))

    ctx = ctx_for("{neutral: contradiction}")
    labels = ctx.labels("shift:two")
    assert sorted(labels) == [0, 0, 2, 2]  # entailment and contradiction, in the source's seeded order
    # argmax per row: entailment, neutral, contradiction, neutral
    logits = np.array([[3.0, 1, 0], [0, 3, 1], [0, 1, 3], [1, 3, 0]])
    preds_merged = np.array([0, 2, 2, 2])
    expected = preds_merged == labels
    assert list(ctx.correct("shift:two", logits)) == list(expected)
    plain = ctx_for("").correct("shift:two", logits)
    assert list(plain) == list(np.array([0, 1, 2, 1]) == labels)
    assert list(plain) != list(expected)  # the merge changes the count on these logits
    inverted = ctx_for("{contradiction: neutral}").correct("shift:two", logits)
    assert list(inverted) != list(expected)
    assert list(ctx.correct("test", np.eye(3)[ctx.labels("test")])) == [True] * len(ctx.labels("test"))


@pytest.mark.parametrize(("merge", "fragment"), [
    ("{neutral: unknown}", "must map a predicted label to the label it counts as"),
    ("{neutral: neutral}", "must map a predicted label"),
    ("[neutral]", "must map a predicted label"),
    ("{neutral: contradiction, contradiction: entailment}", "a label is both merged and merged into"),
])
def test_merge_predictions_errors_name_the_key(tmp_path, merge, fragment):
    with pytest.raises(ConfigError, match=r"key 'shift\.two\.merge_predictions'") as info:
        load_task(pair_task(tmp_path, merge))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_merge_predictions_leaves_the_data_hash_alone(tmp_path):
    """How a set's predictions are counted decides no example: a run stays evaluable when it is added."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with_merge = load_task(pair_task(tmp_path / "a"))
    without = load_task(pair_task(tmp_path / "b", ""))
    assert with_merge.data_hash == without.data_hash and with_merge.spec_hash != without.spec_hash


def test_pairs_are_tokenised_as_pairs(tmp_path):
    from robench.models import load_tokenizer
    from robench.train import tokenize

    spec = load_task(pair_task(tmp_path))
    ds = TaskData(spec, pairs=True).get("train")
    tok = load_tokenizer("tiny-bert")
    enc = tokenize(ds, tok, 64)
    first = ds[0]
    assert enc[0]["input_ids"] == tok(first["text"], first["text_pair"], truncation=True, max_length=64)["input_ids"]
    assert tok.decode(enc[0]["input_ids"]) == f"[CLS] {first['text']} [SEP] {first['text_pair']} [SEP]"
    assert 1 in enc[0]["token_type_ids"]  # the second segment is marked


def test_pairs_are_perturbed_on_both_sides_alike():
    from robench.evaluators.perturb import perturb_items, perturb_texts

    pairs = [("the premise says something long enough", "and the hypothesis answers it"),
             ("another premise with several words", "another hypothesis with words")]
    noisy = perturb_items(pairs, "keyboard", 0.3, 0)
    assert noisy == perturb_items(pairs, "keyboard", 0.3, 0)  # seeded
    assert all(isinstance(p, tuple) and len(p) == 2 for p in noisy)
    flat = perturb_texts([a for a, _ in pairs] + [b for _, b in pairs], "keyboard", 0.3, 0)
    assert [a for a, _ in noisy] == flat[:2] and [b for _, b in noisy] == flat[2:]
    assert all(a != pa for (a, _), (pa, _) in zip(noisy, pairs, strict=True))
    assert all(b != pb for (_, b), (_, pb) in zip(noisy, pairs, strict=True))


def test_backbone_tokenizer_is_prepared_for_right_padding(tmp_path):
    """A hub backbone whose tokenizer pads on the left and has no pad token (a decoder's, say): robench pads
    on the right with a stand-in token, the model's pad id follows, and the run saves it so."""
    from robench.models import align_padding, load_model, load_tokenizer, prepare_tokenizer

    tok = load_tokenizer("tiny-bert")
    tok.padding_side, tok.truncation_side = "left", "left"
    tok.pad_token = None
    assert tok.pad_token is None
    prepare_tokenizer(tok)
    assert (tok.padding_side, tok.truncation_side, tok.pad_token) == ("right", "right", tok.sep_token)
    batch = tok(["a", "a much longer text here"], padding=True)
    assert batch["input_ids"][0][0] == tok.cls_token_id and batch["input_ids"][0][-1] == tok.pad_token_id
    model = load_model("tiny-bert", 3)
    model.config.pad_token_id = None
    align_padding(model, tok)
    assert model.config.pad_token_id == tok.pad_token_id
    # a folder backbone saved with left padding trains with right padding, and its run keeps it
    folder = tmp_path / "left-padded"
    load_model("tiny-bert", 2).save_pretrained(folder)
    saved = load_tokenizer("tiny-bert")
    saved.padding_side = "left"
    saved.save_pretrained(folder)
    assert load_tokenizer(str(folder)).padding_side == "right"
    none = load_tokenizer("tiny-bert")
    none.pad_token = none.eos_token = none.sep_token = none.unk_token = None
    with pytest.raises(ConfigError, match="no padding token"):
        prepare_tokenizer(none)


@pytest.mark.parametrize(("model", "method"), [("tiny-bert", "smart"), ("tiny-mpnet", "freelb")])
def test_a_pair_task_trains_and_evaluates_on_bert_and_roberta_style_backbones(tmp_path, model, method):
    """A pair task end to end with an embedding-perturbing method, on a BERT-style backbone (segment ids) and
    an MPNet one (RoBERTa's layout: ``<s> A </s></s> B </s>``, no segment ids, padding id 1)."""
    from robench.evaluation import evaluate_run, make_context
    from robench.train import TrainConfig, train

    task = pair_task(tmp_path, rows=24)
    run = train(TrainConfig(task=task, model=model, method=method, epochs=1, batch_size=4, out=str(tmp_path / "r"),
                            device="cpu"))
    ctx = make_context(run, device="cpu")
    enc = ctx.tokenizer(*ctx.texts("test")[0])
    assert ctx.tokenizer.decode(enc["input_ids"]).count(ctx.tokenizer.sep_token) == (2 if model == "tiny-bert" else 3)
    written = evaluate_run(run, "id,shift", device="cpu", ctx=ctx)
    shift = json.loads(written["shift"].read_text())
    assert shift["settings"]["merge_predictions"] == {"two": {"neutral": "contradiction"}}
    preds = ctx.predict("shift:two").logits.argmax(-1)
    assert shift["metrics"]["accuracy"]["two"] == pytest.approx(np.mean(np.where(preds == 1, 2, preds)
                                                                        == ctx.labels("shift:two")))
