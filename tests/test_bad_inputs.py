"""Bad inputs to runs, results, caches, baselines and the CLI's numeric options (issue 14): each
gives one clear line and exit 2, nothing is lost, nothing passes for a valid result."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest
from test_cli import assert_one_line_error, run_cli

RESULT_SUITE = "id"


def one_line(code: int, err: str, *fragments: str) -> None:
    assert_one_line_error(code, err, *fragments)


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the tiny finished run (tests below damage it)."""
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("results", "cache", "artifacts"))
    return dest


# ------------------------------------------------------------------------------------- data lost / wrong numbers


def test_limited_eval_never_replaces_the_full_result(monkeypatch, capsys, run):
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")[0] == 0
    full = json.loads((run / "results" / "id.json").read_text())
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--limit", "16",
                   "--device", "cpu")[0] == 0
    assert json.loads((run / "results" / "id.json").read_text()) == full  # untouched
    limited = json.loads((run / "results" / "id.limit16.json").read_text())
    assert limited["metrics"]["n"] == 16 and limited["run"]["limit"] == 16
    from robench.results import load_results

    labels = {r.task: r.metrics["n"] for r in load_results(run)}
    # never one row, and never the row of a run trained on 16 examples
    assert labels == {"sentiment (limit 64)": 64, "sentiment (limit 64, eval limit 16)": 16}


def test_limited_eval_keeps_the_full_figures_and_logs(run):
    from robench.evaluation import evaluate_run, make_context

    evaluate_run(run, "calibration", device="cpu")
    full = (run / "artifacts" / "calibration_reliability.png").read_bytes()
    evaluate_run(run, "calibration", device="cpu", limit=16)
    assert (run / "artifacts" / "calibration_reliability.png").read_bytes() == full
    assert (run / "artifacts" / "calibration_reliability.limit16.png").is_file()
    ctx = make_context(run, "cpu", limit=16)
    assert ctx.artifact("attack-pwws-n20-seed0-qbnone.jsonl").name == "attack-pwws-n20-seed0-qbnone.limit16.jsonl"
    assert make_context(run, "cpu", limit=64).eval_limit is None  # the run's own limit: the full result


def test_damaged_weights_are_not_scored_from_the_cache(monkeypatch, capsys, run):
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")[0] == 0
    weights = run / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(100_000)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--force", "--device", "cpu")
    one_line(code, err, "model.safetensors", "truncated or replaced", "re-train")


@pytest.mark.parametrize("cache_bytes", [b"", b"PK\x03\x04 truncated"])
def test_damaged_cache_is_recomputed(run, cache_bytes):
    from robench.evaluation import evaluate_run

    first = json.loads(evaluate_run(run, "id", device="cpu")["id"].read_text())["metrics"]
    caches = list((run / "cache").glob("*.npz"))
    assert caches
    for cache in caches:
        cache.write_bytes(cache_bytes)
    again = json.loads(evaluate_run(run, "id", device="cpu", force=True)["id"].read_text())["metrics"]
    assert again == first
    for cache in caches:  # rewritten whole
        with np.load(cache) as z:
            assert z["logits"].shape[0] == 64


def test_concurrent_cache_writes_use_unique_temp_names(tmp_path):
    from robench.evaluation import _write_cache

    target = tmp_path / "cache" / "k.npz"
    errors: list[Exception] = []

    def write() -> None:
        for _ in range(40):
            try:
                _write_cache(target, {"logits": np.zeros((4, 2), np.float32)})
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not list(target.parent.glob(".*tmp*"))


# ------------------------------------------------------------------------------------- tracebacks -> one line


@pytest.mark.parametrize("damage, fragment", [
    (lambda r: (r / "config.json").unlink(), "no config.json"),
    (lambda r: (r / "config.json").write_text("{not json"), "could not be loaded"),
    (lambda r: ((r / "tokenizer.json").unlink(), (r / "vocab.txt").unlink(missing_ok=True)), "no tokenizer.json"),
    (lambda r: (r / "tokenizer.json").write_text("[1, 2"), "tokenizer could not be loaded"),
    (lambda r: (r / "run.json").write_text("[1, 2, 3]"), "not a robench run record"),
    (lambda r: (r / "run.json").write_bytes(b"\xff\xfe\x00garbage"), "not valid JSON"),
    (lambda r: _edit_run(r, lambda d: d.pop("task")), "key 'task'"),
    (lambda r: _edit_run(r, lambda d: d.__setitem__("seed", "zero")), "seed is 'zero'"),
    (lambda r: _edit_run(r, lambda d: d["config"].__setitem__("max_length", "long")), "config.max_length"),
])
def test_damaged_run_gives_one_line(monkeypatch, capsys, run, damage, fragment):
    damage(run)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")
    one_line(code, err, fragment)


def _edit_run(run, change) -> None:
    data = json.loads((run / "run.json").read_text())
    change(data)
    (run / "run.json").write_text(json.dumps(data))


@pytest.mark.parametrize("args, fragment", [
    (["eval", "--n", "0"], "--n must be >= 1"),
    (["eval", "--n", "-1"], "--n must be >= 1"),
    (["eval", "--query-budget", "-3"], "--query-budget must be >= 1"),
    (["eval", "--limit", "0"], "--limit must be >= 1"),
    (["train", "--max-length", "0"], "--max-length must be >= 1"),
    (["train", "--max-length", "-5"], "--max-length must be >= 1"),
    (["train", "--lr", "nan"], "--lr must be a finite number"),
    (["train", "--epochs", "0"], "--epochs must be >= 1"),
    (["run", "--lr", "inf"], "--lr must be a finite number"),
    (["leaderboard", "--bootstrap", "0"], "--bootstrap must be >= 1"),
])
def test_numeric_options_are_checked_at_the_edge(monkeypatch, capsys, tmp_path, args, fragment):
    extra = ["--run", str(tmp_path)] if args[0] == "eval" else []
    extra += ["--model", "tiny-bert", "--out", str(tmp_path / "r")] if args[0] == "train" else []
    code, _, err = run_cli(monkeypatch, capsys, *args, *extra)
    one_line(code, err, fragment)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------- results and baselines


def _results(tmp_path, run):
    from robench.evaluation import evaluate_run

    evaluate_run(run, "id", device="cpu")
    return run / "results" / "id.json"


@pytest.mark.parametrize("damage, fragment", [
    (lambda p: p.write_text(p.read_text()[:200]), "not valid JSON"),
    (lambda p: p.write_bytes(b""), "empty or damaged"),
    (lambda p: p.write_bytes(b"\x00" * 64), "empty or damaged"),
    (lambda p: _edit_json(p, lambda d: d["metric_specs"][0].__setitem__("name", 5)), "metric_specs[0].name is 5, not text"),
    (lambda p: _edit_json(p, lambda d: d["run"].__setitem__("training_diagnostics", 5)), "training_diagnostics"),
    (lambda p: _edit_json(p, lambda d: d.__setitem__("metrics", [1, 2])), "metrics is [1, 2], not a mapping"),
    (lambda p: _edit_json(p, lambda d: d["run"].__setitem__("seed", "0; rm")), "run.seed"),
    (lambda p: _edit_json(p, lambda d: d.__setitem__("metric_specs", [{"name": "accuracy"}])), "key 'metric_specs[0].direction' is missing"),
    (lambda p: _edit_json(p, lambda d: d.__setitem__("artifacts", "x.png")), "artifacts is 'x.png', not a list"),
])
def test_damaged_result_names_the_file(monkeypatch, capsys, tmp_path, run, damage, fragment):
    path = _results(tmp_path, run)
    assert run_cli(monkeypatch, capsys, "baseline", "record", "--results", str(run), "--out",
                   str(tmp_path / "b.json"))[0] == 0
    damage(path)
    for command in (["leaderboard", "--results", str(run), "--out", str(tmp_path / "lb"), "--no-plots"],
                    ["check", "--results", str(run), "--baseline", str(tmp_path / "b.json")]):
        code, _, err = run_cli(monkeypatch, capsys, *command)
        one_line(code, err, str(path), fragment)


def _edit_json(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("content, fragment", [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not valid JSON"),
    (json.dumps({"schema": "robench.baseline/1", "scores": []}).encode(), "scores is [], not a mapping"),
    (json.dumps({"schema": "robench.baseline/1", "scores": {}}).encode(), "scores is {}, not a mapping with scores to check"),
    (json.dumps({"schema": "robench.baseline/1", "scores": {"a | b | c": {"id.accuracy": {
        "value": 0.5, "direction": "higher"}}, "x": []}}).encode(), 'scores["x"] is [], not a mapping'),
    (json.dumps({"schema": "robench.baseline/1", "scores": {"a | b | c": {"id.accuracy": {"direction": "higher"}}}}
                ).encode(), 'key \'scores["a | b | c"]["id.accuracy"].value\' is missing'),
    (json.dumps({"schema": "robench.baseline/1", "scores": {"a | b | c": {"id.accuracy": {
        "value": "high", "direction": "higher"}}}}).encode(), "value is 'high', not a number"),
    (json.dumps({"schema": "robench.baseline/1", "scores": {"a | b | c": {"id.accuracy": {
        "value": 0.5, "direction": "higher"}}}, "tolerances": {"*": "big"}}).encode(), 'tolerances["*"] is \'big\', not a number'),
])
def test_bad_baseline_gives_one_line(monkeypatch, capsys, tmp_path, run, content, fragment):
    _results(tmp_path, run)
    baseline = tmp_path / "b.json"
    baseline.write_bytes(content)
    code, _, err = run_cli(monkeypatch, capsys, "check", "--results", str(run), "--baseline", str(baseline))
    one_line(code, err, fragment)


# ------------------------------------------------------------------------------------- escapes


def test_leaderboard_writes_nothing_outside_out(monkeypatch, capsys, tmp_path, run):
    path = _results(tmp_path, run)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    (run / "artifacts").mkdir(exist_ok=True)
    (run / "artifacts" / "fine.png").write_bytes(b"\x89PNG ok")
    _edit_json(path, lambda d: (d["run"].__setitem__("method", "../../../escaped"),
                                d.__setitem__("artifacts", ["../secret.png", "artifacts/fine.png"])))
    out = tmp_path / "deep" / "lb"
    code, stdout, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run), "--out", str(out))
    assert code == 0, err
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {p for p in run.rglob("*")} - {secret}
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written), written
    copied = [p.read_bytes() for p in out.rglob("*.png") if "artifacts" in p.parts]
    assert b"\x89PNG ok" in copied and b"\x89PNG not yours" not in copied


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


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[1, 2]", b'{"settings": 5}'])
def test_unreadable_old_result_is_recomputed_not_a_traceback(run, content):
    from robench.evaluation import evaluate_run

    path = run / "results" / "id.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    evaluate_run(run, "id", device="cpu")  # no --force: the damaged file is not "the same settings"
    assert json.loads(path.read_text())["metrics"]["n"] == 64


def test_linked_figures_outside_the_run_are_not_copied(monkeypatch, capsys, tmp_path, run):
    _results(tmp_path, run)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    (run / "artifacts").mkdir(exist_ok=True)
    (run / "artifacts" / "linked.png").symlink_to(secret)
    out = tmp_path / "lb"
    assert run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run), "--out", str(out))[0] == 0
    assert not [p for p in out.rglob("*.png") if p.read_bytes() == b"\x89PNG not yours"]


def test_rebuilding_one_group_keeps_the_other_groups_files(tmp_path, run):
    from robench.report import write_leaderboard

    _results(tmp_path, run)
    out = tmp_path / "out"
    other = out / "files" / "sst2" / "minilm" / "vanilla" / "seed0" / "id.json"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    (out / "LEADERBOARD.md").write_text("# robench leaderboard\n")  # an earlier board in this folder
    write_leaderboard(run, out, plots=False)
    assert other.exists() and list((out / "files" / "sentiment-limit-64").rglob("id.json"))
