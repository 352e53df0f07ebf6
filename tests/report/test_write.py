"""Writing the board (robench/report/write.py): nothing is written outside --out, no figure linked from
outside a run is copied, and rebuilding one group keeps the other groups' files."""

from __future__ import annotations

from cli_helpers import edit_json, id_result, run_cli


def test_leaderboard_writes_nothing_outside_out(monkeypatch, capsys, tmp_path, run):
    path = id_result(run)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    (run / "artifacts").mkdir(exist_ok=True)
    (run / "artifacts" / "fine.png").write_bytes(b"\x89PNG ok")
    edit_json(path, lambda d: (d["run"].__setitem__("method", "../../../escaped"),
                                d.__setitem__("artifacts", ["../secret.png", "artifacts/fine.png"])))
    out = tmp_path / "deep" / "lb"
    code, stdout, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run), "--out", str(out))
    assert code == 0, err
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {p for p in run.rglob("*")} - {secret}
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written), written
    copied = [p.read_bytes() for p in out.rglob("*.png") if "artifacts" in p.parts]
    assert b"\x89PNG ok" in copied and b"\x89PNG not yours" not in copied


def test_linked_figures_outside_the_run_are_not_copied(monkeypatch, capsys, tmp_path, run):
    id_result(run)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    (run / "artifacts").mkdir(exist_ok=True)
    (run / "artifacts" / "linked.png").symlink_to(secret)
    out = tmp_path / "lb"
    assert run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run), "--out", str(out))[0] == 0
    assert not [p for p in out.rglob("*.png") if p.read_bytes() == b"\x89PNG not yours"]


def test_rebuilding_one_group_keeps_the_other_groups_files(tmp_path, run):
    from robench.report import write_leaderboard

    id_result(run)
    out = tmp_path / "out"
    other = out / "files" / "sst2" / "minilm" / "vanilla" / "seed0" / "id.json"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    (out / "LEADERBOARD.md").write_text("# robench leaderboard\n")  # an earlier board in this folder
    write_leaderboard(run, out, plots=False)
    assert other.exists() and list((out / "files" / "sentiment-limit-64").rglob("id.json"))
