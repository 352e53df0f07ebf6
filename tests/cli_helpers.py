"""Run the CLI in-process and check its one-line errors (shared by the CLI tests; not a test module)."""

from __future__ import annotations

import json
import sys

from robench.cli import main


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["robench", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


TINY = ("--model", "tiny-bert", "--limit", "16", "--epochs", "1", "--device", "cpu")  # the CLI's tiniest training
TINY_MPNET = "tiny-mpnet"  # the random-init MPNet-architecture model


def one_line(exc: BaseException) -> str:
    """An error's text, checked to be one line with a fix after ';'."""
    text = str(exc)
    assert "\n" not in text and ";" in text, text
    return text


def edit_json(path, change) -> None:
    """Load a JSON file, apply ``change`` to its content, write it back."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def id_result(run):
    """Evaluate ``run``'s in-distribution accuracy; the result file's path."""
    from robench.evaluation import evaluate_run

    evaluate_run(run, "id", device="cpu")
    return run / "results" / "id.json"
