"""The RoAST protocol tasks (tasks/sst2.yaml, tasks/mnli.yaml) read through the normal task path, with the
fixtures of tests/fixtures/hub standing in for the Hugging Face hub (no network: sockets are blocked).

One test per hub source checks that the source reads the right column(s) and maps every label name to the
right task label, and that a wrong text column, a wrong label map or swapped sentence-pair columns fail;
SST-2 and MNLI (sentence pairs) train, evaluate, go on the board and into the RoAST table on the tiny model."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import TINY, assert_one_line_error, run_cli

import robench.tasks.sources as sources
from robench.errors import ConfigError
from robench.tasks import TaskData, load_task

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hub"
TASKS = ("sst2", "mnli")


# ------------------------------------------------------------------------------ the hub, from fixtures

def fixture_dir(hub: dict) -> Path:
    return FIXTURES / hub["path"].replace("/", "__") / (hub.get("name") or "default")


def fixture_rows(hub: dict) -> list[dict]:
    path = fixture_dir(hub) / f"{hub.get('split', 'train')}.jsonl"
    if not path.is_file():
        raise ConfigError(f"no fixture for hub dataset {hub['path']} (name {hub.get('name')}, split "
                          f"{hub.get('split', 'train')}): {path} is missing; add one (tests/fixtures/hub/README.md)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fixture_features(hub: dict) -> dict:
    return json.loads((fixture_dir(hub) / "features.json").read_text(encoding="utf-8"))


def fixture_dataset(hub: dict):
    """What ``datasets.load_dataset(path, name, split=split)`` returns, built from the fixture: the card's
    columns, in its order, with its types (ClassLabel names, Translation, int32...)."""
    import datasets

    features = datasets.Features.from_dict(fixture_features(hub))
    return datasets.Dataset.from_list(fixture_rows(hub), features=features)


@pytest.fixture
def hub(monkeypatch, blocked_sockets):
    """The hub replaced by the fixtures: every call is recorded; ``blocked_sockets`` records any connection."""
    calls: list[dict] = []

    def fake(spec: dict):
        calls.append(dict(spec))
        return fixture_dataset(spec)

    monkeypatch.setattr(sources, "hub_dataset", fake)
    return calls, blocked_sockets


def hub_sources(task: str) -> list[str]:
    return [name for name, src in load_task(task).sources.items() if src.hub is not None]


PARAMS = [(task, name) for task in TASKS for name in hub_sources(task)]


# ------------------------------------------------------------------------------ what each source should read

# Label names (ClassLabel names, or the label text a dataset stores) -> task label; None: left out on purpose.
MEANING = {
    "negative": "negative", "positive": "positive", "1 star": "negative", "5 stars": "positive",
    "2 star": None, "3 stars": None, "4 stars": None, "no_impact": None, "mixed": None,
    "entailment": "entailment", "neutral": "neutral", "contradiction": "contradiction",
    "not_entailment": "contradiction", "non-entailment": "contradiction",  # RoAST's two-class sets: index 2
}


def premise_hypothesis(row):
    return row["premise"], row["hypothesis"]


# (task, source) -> (the text of a fixture row, where its label name is); label None: an OOD source.
# Written from the dataset cards (tests/fixtures/hub/README.md), independently of the task files.
EXPECTED = {
    ("sst2", "sst2_train"): (lambda r: r["sentence"], "label"),
    ("sst2", "sst2_validation"): (lambda r: r["sentence"], "label"),
    ("sst2", "yelp"): (lambda r: r["text"], "label"),
    ("sst2", "imdb"): (lambda r: r["text"], "label_text"),
    ("sst2", "poem"): (lambda r: r["verse_text"], "label"),
    ("sst2", "amazon"): (lambda r: r["content"], "label"),
    ("sst2", "advglue_sst2"): (lambda r: r["sentence"], "label"),
    ("sst2", "wmt16"): (lambda r: r["translation"]["en"], None),
    ("sst2", "multi30k"): (lambda r: r["en"], None),
    ("sst2", "newsgroups"): (lambda r: r["text"], None),
    ("sst2", "qqp"): (lambda r: r["question1"] + r["question2"], None),  # RoAST: sent1 + sent2
    ("sst2", "mnli_m"): (lambda r: r["premise"] + r["hypothesis"], None),
    ("sst2", "mnli_mm"): (lambda r: r["premise"] + r["hypothesis"], None),
    ("mnli", "mnli_train"): (premise_hypothesis, "label"),
    ("mnli", "mnli_matched"): (premise_hypothesis, "label"),
    ("mnli", "mnli_mismatched"): (premise_hypothesis, "label"),
    ("mnli", "qnli"): (lambda r: (r["sentence"], r["question"]), "label"),
    ("mnli", "wnli"): (lambda r: (r["sentence1"], r["sentence2"]), "label"),
    ("mnli", "fever_nli"): (premise_hypothesis, "label"),
    ("mnli", "wanli"): (premise_hypothesis, "gold"),
    ("mnli", "anli_r1"): (premise_hypothesis, "label"),
    ("mnli", "anli_r2"): (premise_hypothesis, "label"),
    ("mnli", "anli_r3"): (premise_hypothesis, "label"),
    ("mnli", "advglue_mnli_m"): (premise_hypothesis, "label"),
    ("mnli", "advglue_mnli_mm"): (premise_hypothesis, "label"),
    ("mnli", "wmt16"): (lambda r: r["translation"]["en"], None),
    ("mnli", "multi30k"): (lambda r: r["en"], None),
    ("mnli", "sst2"): (lambda r: r["sentence"], None),
    ("mnli", "newsgroups"): (lambda r: r["text"], None),
    ("mnli", "qqp"): (lambda r: r["question1"] + r["question2"], None),
}


def label_name(hub: dict, row: dict, column: str) -> str:
    """A fixture row's label as a name: a ClassLabel index through the card's names, else the stored text."""
    feature = fixture_features(hub)[column]
    value = row[column]
    return feature["names"][value] if feature.get("_type") == "ClassLabel" else str(value)


def strip(text):
    return tuple(t.strip() for t in text) if isinstance(text, tuple) else text.strip()


def expected_examples(task: str, name: str, spec) -> list[tuple]:
    text_of, label_column = EXPECTED[(task, name)]
    hub = spec.sources[name].hub
    out = []
    for row in fixture_rows(hub):
        if label_column is None:
            out.append((strip(text_of(row)), None))
            continue
        meaning = MEANING[label_name(hub, row, label_column)]
        if meaning is not None:
            out.append((strip(text_of(row)), meaning))
    return sorted(out, key=repr)


def read_examples(spec, name: str) -> list[tuple]:
    """Every example the source's sets hold, through TaskData (the path training and evaluation take)."""
    data = TaskData(spec, pairs=True)
    out = []
    for key, s in spec.sets.items():
        if s.source != name:
            continue
        ds = data.get(key)
        texts = list(zip(ds["text"], ds["text_pair"], strict=True)) if "text_pair" in ds.column_names else ds["text"]
        labelled = not key.startswith("ood:")
        out += [(t, spec.labels[y] if labelled else None) for t, y in zip(texts, ds["label"], strict=True)]
    return sorted(out, key=repr)


def with_source(spec, name: str, **changes):
    """A copy of the task with one source changed (SourceSpec is frozen)."""
    changed = dataclasses.replace(spec, sources=dict(spec.sources))
    changed.sources[name] = dataclasses.replace(spec.sources[name], **changes)
    return changed


def rotated(label_map: dict, labels: list[str]) -> dict:
    """The label map with its target labels rotated: every mapped class now lands on another class."""
    targets = sorted({v for v in label_map.values() if v is not None}, key=labels.index)
    step = {t: targets[(i + 1) % len(targets)] for i, t in enumerate(targets)}
    return {k: None if v is None else step[v] for k, v in label_map.items()}


# ------------------------------------------------------------------------------ one test per hub source

def test_every_hub_source_has_a_fixture_and_an_expectation():
    for task, name in PARAMS:
        hub = load_task(task).sources[name].hub
        assert (task, name) in EXPECTED, f"{task}: source {name!r} has no expectation in this test"
        assert (fixture_dir(hub) / "features.json").is_file() and fixture_rows(hub), (task, name)
        assert fixture_dir(hub).relative_to(FIXTURES).parts[0] in (FIXTURES / "README.md").read_text()
    assert {k for k in EXPECTED} == set(PARAMS), "expectations for sources the tasks no longer have"


@pytest.mark.parametrize(("task", "name"), PARAMS, ids=[f"{t}-{n}" for t, n in PARAMS])
def test_hub_source_reads_its_columns_and_labels(hub, task, name):
    calls, sockets = hub
    spec = load_task(task)
    src = spec.sources[name]
    expected = expected_examples(task, name, spec)
    assert expected, "the fixture must hold rows the task keeps"
    assert read_examples(spec, name) == expected
    assert {c["path"] for c in calls} == {src.hub["path"]}

    # a text column the dataset does not have: one line naming the columns there are
    first = src.text_columns[0]
    wrong = ("no_such_column", *src.text_columns[1:]) if len(src.text_columns) > 1 else "no_such_column"
    with pytest.raises(ConfigError, match="no text column 'no_such_column' \\(columns: ") as info:
        read_examples(with_source(spec, name, text_column=wrong), name)
    assert "\n" not in str(info.value) and first.split(".")[0] in str(info.value)

    if src.label_map is not None:  # a wrong label map reads, but no longer matches the card's label names
        assert read_examples(with_source(spec, name, label_map=rotated(src.label_map, spec.labels)), name) != expected
    if len(src.text_columns) == 2:  # the pair's columns swapped (or, joined, concatenated the other way round)
        assert read_examples(with_source(spec, name, text_column=src.text_columns[::-1]), name) != expected
    assert sockets == []


def test_wmt16_reads_the_english_side_of_the_translation_column(hub):
    calls, sockets = hub
    spec = load_task("sst2")
    texts = TaskData(spec).get("ood:wmt16")["text"]
    rows = fixture_rows(spec.sources["wmt16"].hub)
    assert sorted(texts) == sorted(r["translation"]["en"] for r in rows)
    # the column itself holds {de, en} mappings: naming it alone is one line that names the field to use
    with pytest.raises(ConfigError, match=r"text column 'translation' holds mappings with fields de, en, not text; "
                                          r"name one field, e.g. text_column: translation.de") as info:
        TaskData(with_source(spec, "wmt16", text_column="translation")).get("ood:wmt16")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"column 'translation' has no field 'fr' \(fields: de, en\)"):
        TaskData(with_source(spec, "wmt16", text_column="translation.fr")).get("ood:wmt16")
    assert sockets == []


def test_pair_sets_need_a_caller_that_reads_pairs(hub):
    calls, sockets = hub
    spec = load_task("mnli")
    with pytest.raises(ConfigError, match=r"set 'train' holds sentence pairs .*text_column: \[premise, hypothesis\]"
                                          r".*would drop the second text") as info:
        TaskData(spec).get("train")
    assert "\n" not in str(info.value)
    ds = TaskData(spec, pairs=True).get("test")
    assert ds.column_names == ["text", "text_pair", "label"]
    assert TaskData(spec).get("ood:sst2")["text"]  # MNLI's single-text OOD sets build for anyone
    assert calls and sockets == []


# ------------------------------------------------------------------------------ the `#+` file sets

UNCOMMENT = re.compile(r"(?m)^#\+")


@pytest.mark.parametrize("task", TASKS)
def test_documented_file_sets_read_once_uncommented(hub, tmp_path, task):
    """The sets with no hub copy are written out as `#+` lines: with the prefixes deleted, the task loads and
    reads files in the layout the comments name (written here with two rows per file)."""
    from robench.tasks import TASKS_DIR

    text = (TASKS_DIR / f"{task}.yaml").read_text(encoding="utf-8")
    enabled = tmp_path / f"{task}.yaml"
    enabled.write_text(UNCOMMENT.sub("", text), encoding="utf-8")
    spec = load_task(str(enabled))
    file_sources = {n: s for n, s in spec.sources.items() if s.file is not None}
    assert file_sources and all(s.file.startswith("roast_data/") for s in file_sources.values())
    for name, src in file_sources.items():
        keys = [k for k in src.label_map if src.label_map[k] is not None][:2]
        rows = [{**{c: f"{name} example {i} column {c}" for c in src.text_columns}, src.label_column: key}
                for i, key in enumerate(keys)]
        path = tmp_path / src.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = TaskData(spec, pairs=True)
    for key, s in spec.sets.items():
        if s.source in file_sources:
            assert len(data.get(key)) == 2, key


# ------------------------------------------------------------------------------ end to end

@pytest.mark.slow
def test_sst2_trains_evaluates_and_reaches_the_roast_table(hub, monkeypatch, capsys, tmp_path):
    """train -> eval -> leaderboard -> `robench table --format roast`, on the tiny model, every set of the task
    read from the fixtures; the table's numbers are the result files' per-set numbers, averaged as RoAST does."""
    from robench.report.roast import truncate3

    calls, sockets = hub
    runs = tmp_path / "runs"
    run = runs / "sst2" / "tiny-bert" / "vanilla" / "seed0"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--task", "sst2", *TINY, "--out", str(run))
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id,shift,calibration,anomaly,adversarial",
                           "--device", "cpu")
    assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(runs), "--out",
                             str(tmp_path / "board"), "--no-plots", "--bootstrap", "50")
    assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, "table", "--format", "roast", "--results", str(runs), "--out",
                             str(tmp_path / "roast.csv"), "--digits", "2")
    assert code == 0, err
    assert out.splitlines()[0].split()[:9] == ["task", "model", "method", "seed", "inD", "ooD", "adv", "ece", "auroc"]
    (row,) = list(csv.DictReader((tmp_path / "roast.csv").read_text().splitlines()))
    assert (row["method"], row["n_ind"], row["n_ood"], row["n_adv"], row["n_ece"], row["n_auroc"]) == \
        ("vanilla", "1", "4", "1", "6", "6")

    def result(name):
        return json.loads((run / "results" / f"{name}.json").read_text())["metrics"]

    shift, cal, anomaly = result("shift"), result("calibration"), result("anomaly")
    assert float(row["inD"]) == pytest.approx(truncate3(100 * result("id")["accuracy"]))
    assert float(row["ooD"]) == pytest.approx(sum(truncate3(100 * v) for v in shift["accuracy"].values()) / 4)
    assert float(row["adv"]) == pytest.approx(truncate3(100 * cal["sets"]["adversarial:advglue_sst2"]["accuracy"]))
    eces = [cal["id"]["ece"], *(s["ece"] for s in cal["sets"].values())]
    assert float(row["ece"]) == pytest.approx(100 * sum(truncate3(v) for v in eces) / 6)
    aurocs = [s["auroc"] for n, s in anomaly["scores"]["msp"].items() if n != "mean"]
    assert float(row["auroc"]) == pytest.approx(100 * sum(truncate3(v) for v in aurocs) / 6)
    # every hub source of the task was read, from the fixtures, and nothing was contacted
    assert {(c["path"], c.get("name"), c.get("split")) for c in calls} == \
        {(s.hub["path"], s.hub.get("name"), s.hub.get("split")) for s in load_task("sst2").sources.values() if s.hub}
    assert sockets == []


@pytest.mark.slow
def test_mnli_trains_on_pairs_evaluates_and_reaches_the_roast_table(hub, monkeypatch, capsys, tmp_path):
    """MNLI end to end on the tiny model, every set from the fixtures: trained and evaluated on sentence pairs,
    the two-class sets scored with a predicted neutral counted as contradiction, the static adversarial sets
    alone as the adversarial aspect (the task's recipes: []), and RoAST's line (inD = mean of matched and
    mismatched)."""
    from robench.evaluation import make_context
    from robench.report.roast import truncate3

    calls, sockets = hub
    runs = tmp_path / "runs"
    run = runs / "mnli" / "tiny-bert" / "vanilla" / "seed0"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--task", "mnli", *TINY, "--out", str(run))
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite",
                           "id,shift,calibration,anomaly,adversarial", "--device", "cpu")
    assert code == 0, err

    def result(name):
        return json.loads((run / "results" / f"{name}.json").read_text())

    # the model reads both sides: the saved tokenizer encodes a pair, and another hypothesis changes the logits
    ctx = make_context(run, device="cpu")
    test = ctx.texts("test")
    assert isinstance(test[0], tuple) and len(test[0]) == 2
    from robench.predict import batched_logits

    same = batched_logits(ctx.model, ctx.tokenizer, [test[0], test[0]])
    other = batched_logits(ctx.model, ctx.tokenizer, [test[0], (test[0][0], "A different hypothesis entirely.")])
    assert np.allclose(same[0], same[1]) and not np.allclose(other[0], other[1])
    # QNLI and WNLI: a predicted neutral counts as contradiction (their non-entailment), as RoAST maps it
    shift = result("shift")
    assert shift["settings"]["merge_predictions"] == {"qnli": {"neutral": "contradiction"},
                                                      "wnli": {"neutral": "contradiction"}}
    for name in ("qnli", "wnli", "fever_nli"):
        key = f"shift:{name}"
        pred = ctx.predict(key).logits.argmax(-1)
        if name != "fever_nli":
            pred = np.where(pred == 1, 2, pred)
        assert shift["metrics"]["accuracy"][name] == pytest.approx(np.mean(pred == ctx.labels(key)))
    adv = result("adversarial")
    assert "accuracy_under_attack" not in adv["metrics"] and set(adv["metrics"]["transfer"]) == {
        "anli_r1", "anli_r2", "anli_r3", "advglue_mnli_m", "advglue_mnli_mm"}
    assert adv["settings"]["adversarial_aspect"]["live"] == []

    code, out, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(runs), "--out",
                             str(tmp_path / "board"), "--no-plots", "--bootstrap", "50")
    assert code == 0, err
    board = (tmp_path / "board" / "LEADERBOARD.md").read_text()
    assert "the static adversarial sets only (anli_r1, anli_r2, anli_r3, advglue_mnli_m, advglue_mnli_mm" in board
    code, out, err = run_cli(monkeypatch, capsys, "table", "--format", "roast", "--results", str(runs), "--out",
                             str(tmp_path / "roast.csv"), "--digits", "2")
    assert code == 0, err
    (row,) = list(csv.DictReader((tmp_path / "roast.csv").read_text().splitlines()))
    assert (row["n_ind"], row["n_ood"], row["n_adv"], row["n_ece"], row["n_auroc"]) == ("2", "4", "5", "11", "5")
    ind = (truncate3(100 * result("id")["metrics"]["accuracy"]) + truncate3(100 * shift["metrics"]["accuracy"]["mnli_mm"])) / 2
    assert float(row["inD"]) == pytest.approx(ind)
    assert float(row["adv"]) == pytest.approx(sum(truncate3(100 * v) for v in adv["metrics"]["transfer"].values()) / 5)
    # a live attack on pairs is one line
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "adversarial", "--recipe",
                           "pwws", "--force", "--device", "cpu")
    assert_one_line_error(code, err, "holds sentence pairs", "recipes: []")
    assert {(c["path"], c.get("name"), c.get("split")) for c in calls} == \
        {(s.hub["path"], s.hub.get("name"), s.hub.get("split")) for s in load_task("mnli").sources.values() if s.hub}
    assert sockets == []


# ------------------------------------------------------------------------------ the new source keys

@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{file: d.jsonl, text_column: [a, b, c]}", "a list of 3 columns without join"),
        ("{file: d.jsonl, text_column: a, join: ' '}", "joins a list of text columns, but text_column names one"),
        ("{file: d.jsonl, text_column: [a, b], join: 3}", "must be a string (the separator)"),
        ("{file: d.jsonl, text_column: [a, b], text_pattern: '(.*)'}", "applies to one text column"),
        ("{file: d.jsonl, text_column: translation.}", "must be a column name"),
        ("{file: d.jsonl, text_column: [a, 3]}", "must be a column name or a list of column names"),
        ("{hub: {path: x/y, revision: 7}}", "key 'sources.s.hub.revision': must be a non-empty string"),
    ],
)
def test_text_column_and_join_errors_name_the_key(tmp_path, source, message):
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nlabels: [a, b]\nsources:\n  s: {source}\ntrain: s\nvalidation: s\ntest: s\n")
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_task(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_join_and_dotted_columns_from_a_local_file(tmp_path):
    rows = [{"q": {"first": "How old is it?", "second": "Is it old?"}, "y": "b"},
            {"q": {"first": "Where is it?", "second": "What is it?"}, "y": "a"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nlabels: [a, b]\nsources:\n"
                    "  s: {file: d.jsonl, text_column: [q.first, q.second], join: ' | ', label_column: y}\n"
                    "  p: {file: d.jsonl, text_column: [q.first, q.second], label_column: y}\n"
                    "train: s\nvalidation: s\ntest: p\n")
    spec = load_task(str(path))
    data = TaskData(spec, pairs=True)
    assert sorted(data.get("train")["text"]) == ["How old is it? | Is it old?", "Where is it? | What is it?"]
    test = data.get("test")
    assert sorted(zip(test["text"], test["text_pair"], test["label"], strict=True)) == \
        [("How old is it?", "Is it old?", 1), ("Where is it?", "What is it?", 0)]
    assert data.fingerprint("test") != data.fingerprint("train")


def test_list_tasks_names_where_each_set_reads_and_the_substitutes(monkeypatch, capsys, tmp_path):
    from robench.cli import _set_origin

    spec = load_task("sst2")
    assert _set_origin(spec, "shift", "yelp") == "yelp (hub)"
    assert _set_origin(spec, "shift", "poem") == "poem (hub, substitute)"
    assert _set_origin(spec, "adversarial", "advglue_sst2") == "advglue_sst2 (hub)"
    assert _set_origin(load_task("sentiment"), "ood", "trec") == "trec (asset)"
    monkeypatch.setenv("COLUMNS", "400")
    code, out, err = run_cli(monkeypatch, capsys, "list", "tasks")
    assert code == 0, err
    flat = " ".join(out.split())  # lines wrap at the terminal's width
    assert "sst2: shift: yelp (hub), imdb (hub), poem (hub, substitute), amazon (hub, substitute); adversarial: " \
           "advglue_sst2 (hub); ood: wmt16 (hub)" in flat
    assert "mnli: shift: mnli_mm (hub)" in flat and "sentiment: shift: amazon (asset), tweets (asset)" in flat
    # a substitute note decides no example: it is left out of the data hash; a bad one names its key
    text = (Path(spec.path)).read_text(encoding="utf-8")
    plain = tmp_path / "plain.yaml"
    plain.write_text(re.sub(r"(?m)^    substitute: .*\n", "", text), encoding="utf-8")
    assert load_task(str(plain)).data_hash == spec.data_hash and load_task(str(plain)).spec_hash != spec.spec_hash
    bad = tmp_path / "bad.yaml"
    bad.write_text(re.sub(r"(?m)^(    substitute: )RoAST's poem pickle.*$", r"\g<1>[1, 2]", text, count=1),
                   encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'sources\.poem\.substitute': must be a line of text"):
        load_task(str(bad))
