"""Task specs: schema validation with clear errors (keys given twice and YAML aliases too), loading real
packaged data, fingerprints, and method presets (declared by a task, applied by training)."""

from __future__ import annotations

import pytest

from robench.errors import ConfigError, OfflineError
from robench.tasks import TaskData, fingerprint, load_task, parse_task
from robench.train import TrainConfig

MINIMAL = """
name: mini
labels: [negative, positive]
sources:
  local:
    file: {file}
    label_column: label
    label_map: {{neg: negative, pos: positive}}
    partition: {{fractions: {{train: 0.5, validation: 0.25, test: 0.25}}}}
  other:
    file: {file}
train: {{source: local, part: train}}
validation: {{source: local, part: validation}}
test: {{source: local, part: test}}
ood:
  other: {{source: other, limit: 3}}
"""


def write_task(tmp_path, body: str, rows: int = 8, mutate=lambda text: text):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"example number {i},{'pos' if i % 2 else 'neg'}\n" for i in range(rows)))
    path = tmp_path / "task.yaml"
    path.write_text(mutate(body.format(file=data.name)))
    return path


def test_sentiment_task_loads_real_data():
    spec = load_task("sentiment", limit=50)
    data = TaskData(spec)
    assert spec.labels == ["negative", "positive"]
    assert spec.set_names("shift") == ["amazon", "tweets"] and spec.set_names("ood") == ["trec", "sms"]
    train, test = data.get("train"), data.get("test")
    assert len(train) == 50 and set(train["label"]) == {0, 1}
    assert not set(train["text"]) & set(test["text"]), "train and test overlap"
    assert set(data.get("ood:trec")["label"]) == {-1}
    assert not data.get("ood:trec")[0]["text"].startswith(("DESC:", "ENTY:", "HUM:", "LOC:", "NUM:", "ABBR:"))


def test_partition_and_fingerprint_are_seeded_and_stable():
    a, b = TaskData(load_task("sentiment", limit=30)), TaskData(load_task("sentiment", limit=30))
    assert a.get("train")["text"] == b.get("train")["text"]
    assert a.fingerprint("train") == b.fingerprint("train")
    assert a.fingerprint("train") != a.fingerprint("validation")


def test_binarize_drops_near_neutral_and_labels_by_sign(tmp_path):
    data = tmp_path / "scores.tsv"
    data.write_text("id\tsentiment\ttext\n1\t2.0\tgood\n2\t-1.5\tbad\n3\t0.2\tmeh\n4\t-0.4\tsoso\n")
    path = tmp_path / "t.yaml"
    path.write_text(f"""
name: t
labels: [negative, positive]
sources:
  s: {{file: {data}, label_column: sentiment, binarize: {{threshold: 0.0, min_abs: 0.5}}}}
train: s
validation: s
test: s
""")
    ds = TaskData(load_task(str(path))).get("train")
    assert sorted(zip(ds["text"], ds["label"], strict=True)) == [("bad", 0), ("good", 1)]


def test_profiles_and_limit():
    quick = load_task("sentiment", profile="quick")
    assert quick.sets["train"].limit == 500
    assert quick.evaluator_options["adversarial"]["n"] == 30
    full = load_task("sentiment", profile="full")
    assert full.evaluator_options["adversarial"]["n"] is None  # every example of the attack split
    assert full.sets["train"].limit is None
    assert load_task("sentiment", limit=7).sets["test"].limit == 7
    with pytest.raises(ConfigError, match="no profile 'huge'"):
        load_task("sentiment", profile="huge")


def test_local_csv_task_with_label_map(tmp_path):
    spec = load_task(str(write_task(tmp_path, MINIMAL)))
    data = TaskData(spec)
    assert len(data.get("train")) == 4 and len(data.get("ood:other")) == 3
    texts, labels = data.get("test")["text"], data.get("test")["label"]
    assert all(y == int(t.split()[-1]) % 2 for t, y in zip(texts, labels, strict=True))


def test_fingerprint_depends_on_labels_and_order():
    assert fingerprint(["a", "b"], [0, 1]) != fingerprint(["a", "b"], [1, 1])
    assert fingerprint(["a", "b"], [0, 1]) != fingerprint(["b", "a"], [1, 0])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.replace("labels: [negative, positive]", "labels: negative"), "key 'labels'"),
        (lambda b: b + "\nbogus: 1\n", "key 'bogus': unknown key"),
        (lambda b: b.replace("train: {source: local, part: train}", "train: {source: nowhere}"), "no source named 'nowhere'"),
        (lambda b: b.replace("part: train}", "part: trian}"), "has no part 'trian'"),
        (lambda b: b.replace("{neg: negative, pos: positive}", "{neg: negative, pos: happy}"), "not a task label"),
        (lambda b: b.replace("test: {source: local, part: test}\n", ""), "key 'test': missing"),
        (lambda b: b.replace("train: 0.5", "train: 0.9"), "fractions that sum to 1"),
    ],
)
def test_schema_errors_name_file_key_and_fix(tmp_path, mutate, message):
    path = write_task(tmp_path, MINIMAL, mutate=mutate)
    with pytest.raises(ConfigError, match=message) as info:
        load_task(str(path))
    assert str(path) in str(info.value) and ";" in str(info.value)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\nlabels: {")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_task(str(path))


def test_missing_source_file(tmp_path):
    path = write_task(tmp_path, MINIMAL)
    (tmp_path / "data.csv").unlink()
    with pytest.raises(ConfigError, match="not found; fix the path"):
        TaskData(load_task(str(path))).get("train")


def test_unknown_task():
    with pytest.raises(ConfigError, match="unknown task 'nope'; choose one of: .*sentiment"):
        load_task("nope")


def test_hub_dataset_offline_is_one_clear_line(monkeypatch):
    import robench.hub as hub

    hub.hub_reachable.cache_clear()
    monkeypatch.setattr(hub.socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("no net")))
    try:
        with pytest.raises(OfflineError, match="hub dataset nyu-mll/glue/sst2 .* cannot be downloaded") as info:
            TaskData(load_task("sst2")).get("train")
        assert "\n" not in str(info.value)
    finally:
        hub.hub_reachable.cache_clear()


def test_parse_task_rejects_non_mapping():
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_task(["a", "b"], "x.yaml")


# ------------------------------------------------------------------------------ method presets

@pytest.mark.parametrize(
    ("presets", "message"),
    [
        ("[ram, sentiment]", "key 'method_presets': must map method names to preset names"),
        ("{bananas: sentiment}", "key 'method_presets.bananas': unknown method 'bananas'; use one of:"),
        ("{ram: entailmnet}", "key 'method_presets.ram': method 'ram' has no preset 'entailmnet'; use one of: paper, "),
        ("{freelb: 3}", "must map method names to preset names"),
    ],
)
def test_method_presets_errors_name_file_key_and_fix(tmp_path, presets, message):
    path = write_task(tmp_path, MINIMAL, mutate=lambda b: b + f"method_presets: {presets}\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        load_task(str(path))
    assert str(path) in str(info.value)


def test_method_presets_parsed_with_aliases(tmp_path):
    path = write_task(tmp_path, MINIMAL, mutate=lambda b: b + "method_presets: {roast: entailment, freelb: paper}\n")
    assert load_task(str(path)).method_presets == {"ram": "entailment", "freelb": "paper"}
    assert load_task(str(write_task(tmp_path, MINIMAL))).method_presets == {}


@pytest.mark.parametrize("name", ["sentiment", "sst2"])
def test_packaged_tasks_declare_method_presets(name):
    assert load_task(name).method_presets == {"ram": "sentiment", "freelb": "sentiment"}


def test_list_tasks_shows_method_presets(monkeypatch, capsys):
    from cli_helpers import run_cli

    monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = run_cli(monkeypatch, capsys, "list", "tasks")
    assert code == 0 and "method presets" in out and "ram: sentiment, freelb: sentiment" in out


def test_a_users_tasks_folder_comes_before_the_packaged_tasks(monkeypatch, capsys, tmp_path):
    """A name resolves in ./tasks/ first, then among the tasks packaged with robench; 'robench list tasks'
    says where each comes from, and a run records a user's task by its absolute path."""
    from cli_helpers import run_cli

    from robench.tasks import TASKS_DIR, list_tasks, task_origin, task_path, task_source

    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.yaml").write_text((TASKS_DIR / "sentiment.yaml").read_text().replace(
        "name: sentiment", "name: mine"))
    monkeypatch.chdir(tmp_path)
    assert "mine" in list_tasks() and "sentiment" in list_tasks()
    assert task_path("mine").resolve() == (tmp_path / "tasks" / "mine.yaml").resolve()
    assert task_origin("sentiment") == "packaged" and task_origin("mine").endswith("mine.yaml")
    assert task_source("sentiment") == "sentiment"
    assert task_source("mine") == str((tmp_path / "tasks" / "mine.yaml").resolve())
    code, out, _ = run_cli(monkeypatch, capsys, "list", "tasks")
    assert code == 0 and "packaged" in out and "mine" in out


def test_task_preset_applies_unless_user_passes_preset(tmp_path):
    from robench.train import build_hooks, resolve_preset

    task = str(write_task(tmp_path, MINIMAL, mutate=lambda b: b + "method_presets: {ram: entailment}\n"))
    assert resolve_preset(TrainConfig(task=task, method="roast")) == ("entailment", "task")
    method, hooks = build_hooks(TrainConfig(task=task, method="ram"))
    assert method.selective.config.alpha == 0.6 and method.config.selective_alpha == 0.6
    assert hooks == [method, method.selective]
    assert resolve_preset(TrainConfig(task=task, method="ram", preset="sentiment")) == ("sentiment", "user")
    assert resolve_preset(TrainConfig(task=task, method="ram", method_overrides={"adv_eps": "0.05"})) == (
        "entailment", "task")
    method, _ = build_hooks(TrainConfig(task=task, method="ram", method_overrides={"adv_eps": "0.05"}))
    # --set layers on top of the task's preset: entailment's mask, the user's adv_eps
    assert method.config.selective_alpha == 0.6 and method.config.adv_eps == 0.05
    method, _ = build_hooks(TrainConfig(task=task, method="ram", preset="sentiment",
                                        method_overrides={"selective_alpha": "0.7"}))
    assert method.config.selective_alpha == 0.7 and method.config.selective_beta == 10.0
    assert resolve_preset(TrainConfig(task=task, method="smart")) == (None, "default")


def test_selective_mask_takes_the_task_preset(tmp_path):
    from robench.methods.selective import SelectiveTraining
    from robench.train import build_hooks

    task = str(write_task(tmp_path, MINIMAL, mutate=lambda b: b + "method_presets: {selective: entailment}\n"))
    _, hooks = build_hooks(TrainConfig(task=task, method="freelb", selective=True))
    mask = next(h for h in hooks if isinstance(h, SelectiveTraining))
    assert (mask.config.alpha, mask.config.beta) == (0.6, 1.0)
    _, hooks = build_hooks(TrainConfig(task=task, method="vanilla", selective=True, selective_overrides={"alpha": 0.8}))
    mask = next(h for h in hooks if isinstance(h, SelectiveTraining))
    assert (mask.config.alpha, mask.config.beta) == (0.8, 1.0)


@pytest.mark.parametrize("text, fragment", [
    ("name: a\nname: b\nlabels: [x, y]\n", "key 'name' is given twice (line 2)"),
    ("a: &a [1, 1, 1]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n", "YAML aliases (*a, line 2) are not allowed"),
], ids=["duplicate-key", "alias"])
def test_task_yaml_refuses_duplicate_keys_and_aliases(tmp_path, text, fragment):
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_task(str(tmp_path / "t.yaml"))
    assert fragment in str(info.value) and "\n" not in str(info.value)
