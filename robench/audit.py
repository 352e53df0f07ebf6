"""An audit trail for the adversarial evaluator: examples a reader can look at, and human ratings.

An attack's success rate counts every flipped prediction, valid or not; the post-hoc validity check
(``robench.attacks.validity``) is automatic. Two things let a reader judge the examples themselves:

- :func:`draw_examples`: a fixed, seeded draw of a recipe's successful examples, with their word swaps.
  The evaluator stores five per recipe in the result (``details.examples``) and attacks.md shows them.
- A rating sheet: :func:`write_sheet` draws n successful examples of a run (every recipe's log pooled)
  into a CSV that people fill in (``label_kept`` yes/no, ``meaning`` 1-5); :func:`apply_ratings` reads
  it back and writes the ``audit`` block into the run's adversarial result. An example is valid for a
  human when the gold label still holds and the meaning is kept (``meaning`` >= 4), the rule of
  AdvGLUE (Wang et al. 2021) after Morris et al. 2020. The valid share carries a Wilson 95% interval;
  the human-validated success rate is the attack success rate times the valid share (its interval
  scaled the same way: it covers the rating sample, not the attack's).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robench.errors import ConfigError
from robench.metrics import wilson_interval
from robench.records import is_number, read_json
from robench.results import MetricSpec

AUDIT_DIR = "audit"
SHEET_NAME = "audit-sheet.csv"
SHEET_COLUMNS = ("id", "run_id", "recipe", "log", "index", "gold_label", "original", "perturbed", "swaps",
                 "label_kept", "meaning")
YES, NO = ("yes", "y", "1"), ("no", "n", "0")
MEANING_RANGE = (1, 5)
MIN_MEANING = 4  # meaning kept: 4 or 5 of 5 (AdvGLUE's threshold)
SHARD_LOG = re.compile(r"\.rank\d+of\d+\.jsonl$")  # one process's part of a log (runner.shard_log_path)
EVAL_FIRST = "run 'robench eval --run {run} --suite adversarial' first"
KEEP = "leave the columns robench wrote as they are (fill only label_kept and meaning)"

# What the rating writes into an adversarial result (``metrics.audit``); the Adversarial evaluator declares
# them, so the typed loader reads the block. The success rate is "lower is better" like the evaluator's
# other success rates; the valid share is no verdict on the model (it rates the attack), counts and
# intervals are informational.
AUDIT_SPECS = (
    MetricSpec("audit.validated_success_rate", "lower", "adversarial"),
    MetricSpec("audit.recipes.*.validated_success_rate", "lower", "adversarial"),
    MetricSpec("audit.*", "none", "adversarial"),  # rated, valid, valid share and every interval
)


def _positions(count: int, k: int, seed: int) -> list[int]:
    """``min(k, count)`` distinct positions of ``count`` items, drawn with ``RandomState(seed)`` and sorted,
    so a draw depends on nothing but the items' order, k and the seed."""
    if count <= 0 or k <= 0:
        return []
    picked = np.random.RandomState(seed).choice(count, size=min(k, count), replace=False)
    return sorted(int(p) for p in picked)


def _label(value: Any, labels: Sequence[str] | None) -> Any:
    """A label index as the task's label name where ``labels`` names it, else as it is."""
    if labels is not None and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels):
        return labels[value]
    return value


def draw_examples(records: list[dict], k: int = 5, seed: int = 0,
                  labels: Sequence[str] | None = None) -> list[dict]:
    """``k`` of one recipe's successful attack records (all of them when fewer), drawn with a fixed seed and
    kept in sample order: each as {index, label, original_prediction, perturbed_prediction, original,
    perturbed, swaps}, ``swaps`` the aligned [old, new] word pairs (``validity.word_swaps``, lower case).
    Labels and predictions are the task's label names where ``labels`` is given, else indices."""
    from robench.attacks.validity import word_swaps

    successes = [r for r in records if r.get("outcome") == "successful"]
    out = []
    for pos in _positions(len(successes), k, seed):
        rec = successes[pos]
        original, perturbed = str(rec.get("original", "")), str(rec.get("perturbed", ""))
        swaps, _ = word_swaps(original, perturbed)
        out.append({"index": rec.get("index"), "label": _label(rec.get("label"), labels),
                    "original_prediction": _label(rec.get("original_prediction"), labels),
                    "perturbed_prediction": _label(rec.get("perturbed_prediction"), labels),
                    "original": original, "perturbed": perturbed, "swaps": [[a, b] for a, b in swaps]})
    return out


def swaps_text(swaps: Sequence[Sequence[str]]) -> str:
    """Word swaps as one sheet cell: ``old -> new; old -> new``."""
    return "; ".join(f"{a} -> {b}" for a, b in swaps)


# --------------------------------------------------------------------------------------------- the rating sheet


def attack_logs(run_dir: Path) -> list[Path]:
    """The run's whole-sample attack logs (``artifacts/attack-<recipe>-...jsonl``, as the adversarial evaluator
    and ``robench attack`` name them), by name; never a ``.stale`` log or one process's shard."""
    folder = Path(run_dir) / "artifacts"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("attack-*.jsonl") if p.is_file() and not SHARD_LOG.search(p.name))


def _result_logs(run_dir: Path) -> set[str]:
    """Names of the logs the run's adversarial results were computed from (their ``artifacts``)."""
    names: set[str] = set()
    for path in sorted((Path(run_dir) / "results").glob("adversarial*.json")):
        data = read_json(path)
        arts = data.get("artifacts") if isinstance(data, dict) else None
        names.update(Path(a).name for a in arts or [] if isinstance(a, str))
    return names


@dataclass
class Sheet:
    """A written rating sheet: where, its rows, and how many successful examples the logs held."""

    path: Path
    rows: list[dict[str, Any]]
    available: int
    logs: list[str]


def _has_ratings(path: Path) -> bool:
    """An existing audit sheet in which someone has filled a rating."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return any((row.get("label_kept") or "").strip() or (row.get("meaning") or "").strip()
                       for row in csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def _is_sheet(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return tuple(next(csv.reader(fh), [])) == SHEET_COLUMNS
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def write_sheet(run_dir: Path | str, n: int = 100, seed: int = 0, out: Path | str | None = None) -> Sheet:
    """Draw ``n`` successful adversarial examples of a run, every recipe's log pooled, with ``seed``, and write
    them as a rating sheet (``<run>/audit/audit-sheet.csv`` by default; atomically). Fewer successes than
    ``n``: all of them. An example found in two logs (``robench attack`` re-attacks the evaluator's first
    examples) is drawn once, from the log an adversarial result names. Never replaces a sheet that holds
    ratings, nor a file that is not a sheet."""
    from robench.attacks.runner import read_log
    from robench.attacks.validity import word_swaps
    from robench.outputs import guard_file_out
    from robench.records import load_run
    from robench.storage import atomic_write_text

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    if not run.run_id:
        raise ConfigError(f"{run_dir}/run.json names no run_id; re-train the run ('robench train --force') to rate it")
    path = Path(out) if out is not None else run_dir / AUDIT_DIR / SHEET_NAME
    if path.is_file() and _is_sheet(path) and _has_ratings(path):
        raise ConfigError(f"--out {path} holds ratings already; robench never replaces them: pass --out a new path")
    guard_file_out(path, "audit sheet", _is_sheet)
    named = _result_logs(run_dir)
    logs = sorted(attack_logs(run_dir), key=lambda p: (p.name not in named, p.name))
    if not logs:
        raise ConfigError(f"run {run_dir} has no attack logs (artifacts/attack-*.jsonl); "
                          + EVAL_FIRST.format(run=run_dir))
    pool: list[tuple[str, str, dict]] = []
    seen: set[tuple] = set()
    for log in logs:
        header, records = read_log(log)
        if header is None:
            continue
        recipe = str(header.get("recipe") or "?")
        for rec in records:
            key = (recipe, rec.get("index"), rec.get("original"), rec.get("perturbed"))
            if rec.get("outcome") == "successful" and key not in seen:
                seen.add(key)
                pool.append((log.name, recipe, rec))
    if not pool:
        raise ConfigError(f"the attack logs of run {run_dir} hold no successful adversarial example; nothing to "
                          "rate (attack more examples: 'robench eval --suite adversarial --n N')")
    labels = run.task.labels or None
    rows = []
    for number, pos in enumerate(_positions(len(pool), n, seed), 1):
        log, recipe, rec = pool[pos]
        original, perturbed = str(rec.get("original", "")), str(rec.get("perturbed", ""))
        swaps, _ = word_swaps(original, perturbed)
        rows.append({"id": number, "run_id": run.run_id, "recipe": recipe, "log": log, "index": rec.get("index"),
                     "gold_label": _label(rec.get("label"), labels), "original": original, "perturbed": perturbed,
                     "swaps": swaps_text(swaps), "label_kept": "", "meaning": ""})
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(SHEET_COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return Sheet(path=path, rows=rows, available=len(pool), logs=[p.name for p in logs])


# --------------------------------------------------------------------------------------------- reading ratings


@dataclass(frozen=True)
class Rating:
    """One filled row of a rating sheet."""

    row: int  # 1-based, after the header
    id: str
    run_id: str
    recipe: str
    log: str
    index: int
    perturbed: str
    label_kept: bool
    meaning: int

    @property
    def valid(self) -> bool:
        """Valid for a human: the gold label still holds and the meaning is kept."""
        return self.label_kept and self.meaning >= MIN_MEANING


def _where(path: Path, number: int, row: dict[str, Any], column: str) -> str:
    ident = (row.get("id") or "").strip()
    return f"{path}: row {number}" + (f" (id {ident})" if ident else "") + f", column {column}"


def parse_label_kept(value: str) -> bool | None:
    """yes / no (also y / n, 1 / 0; any case) as True / False; None for anything else."""
    text = value.strip().lower()
    return True if text in YES else False if text in NO else None


def parse_meaning(value: str) -> int | None:
    """A whole number from 1 to 5, else None."""
    text = value.strip()
    if not re.fullmatch(r"[+]?\d+", text):
        return None
    number = int(text)
    return number if MEANING_RANGE[0] <= number <= MEANING_RANGE[1] else None


def read_ratings(path: Path | str) -> list[Rating]:
    """A filled rating sheet's rows, or one line naming the first bad row and column: every row needs
    ``label_kept`` yes / no (y / n, 1 / 0) and ``meaning`` a whole number from 1 to 5."""
    path = Path(path)
    fix = "pass the sheet that 'robench audit --run' wrote, filled in"
    if path.is_dir():
        raise ConfigError(f"--ratings {path} is a folder; {fix}")
    if not path.is_file():
        raise ConfigError(f"--ratings {path} does not exist; {fix}")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"--ratings {path} is not a readable UTF-8 CSV file ({type(exc).__name__}); {fix}") from None
    missing = [c for c in SHEET_COLUMNS if c not in header]
    if missing:
        raise ConfigError(f"--ratings {path} lacks the column(s) {', '.join(missing)}; {fix}")
    if not raw:
        raise ConfigError(f"--ratings {path} has no rows; {fix}")
    out: list[Rating] = []
    seen: dict[tuple[str, str, int], int] = {}
    for number, row in enumerate(raw, 1):
        row = {k: (v if isinstance(v, str) else "") for k, v in row.items() if k is not None}
        for column in ("run_id", "recipe", "log"):
            if not row[column].strip():
                raise ConfigError(f"{_where(path, number, row, column)} is empty; {KEEP}")
        index = row["index"].strip()
        if not re.fullmatch(r"\d+", index):
            raise ConfigError(f"{_where(path, number, row, 'index')} is {index!r}, not an example index; {KEEP}")
        kept = parse_label_kept(row["label_kept"])
        if kept is None:
            raise ConfigError(f"{_where(path, number, row, 'label_kept')} is {row['label_kept']!r}, not yes or no; "
                              "fill every row's label_kept with yes or no (also y/n, 1/0)")
        meaning = parse_meaning(row["meaning"])
        if meaning is None:
            raise ConfigError(f"{_where(path, number, row, 'meaning')} is {row['meaning']!r}, not a whole number "
                              "from 1 to 5; fill every row's meaning with 1 (lost) to 5 (fully kept)")
        rating = Rating(row=number, id=row["id"].strip(), run_id=row["run_id"].strip(), recipe=row["recipe"].strip(),
                        log=row["log"].strip(), index=int(index), perturbed=row["perturbed"], label_kept=kept,
                        meaning=meaning)
        key = (rating.run_id, rating.log, rating.index)
        if key in seen:
            raise ConfigError(f"{path}: rows {seen[key]} and {number} rate the same example (log {rating.log}, index "
                              f"{rating.index}); keep one of them")
        seen[key] = number
        out.append(rating)
    return out


# --------------------------------------------------------------------------------------------- the audit block


def share_block(ratings: list[Rating], success_rate: Any) -> dict[str, Any]:
    """Rated n, valid count, the valid share with its Wilson 95% interval, the attack success rate it scales,
    and the human-validated success rate (``success_rate`` x the share; its interval scaled alike; NaN
    without a success rate)."""
    n, valid = len(ratings), sum(r.valid for r in ratings)
    low, high = wilson_interval(valid, n)
    rate = float(success_rate) if is_number(success_rate) else float("nan")
    share = valid / n if n else float("nan")
    return {"rated": n, "valid": valid, "valid_share": share, "valid_share_low": low, "valid_share_high": high,
            "attack_success_rate": rate, "validated_success_rate": rate * share, "validated_success_rate_low": rate * low,
            "validated_success_rate_high": rate * high}


def audit_block(ratings: list[Rating], metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics.audit`` of an adversarial result from its rated examples: overall (every recipe pooled, against
    the worst-case success rate) and per recipe (against that recipe's success rate)."""
    recipes = metrics.get("recipes") if isinstance(metrics.get("recipes"), dict) else {}
    block: dict[str, Any] = share_block(ratings, metrics.get("attack_success_rate"))
    block["recipes"] = {}
    for recipe in sorted({r.recipe for r in ratings}):
        own = recipes.get(recipe) if isinstance(recipes.get(recipe), dict) else {}
        block["recipes"][recipe] = share_block([r for r in ratings if r.recipe == recipe],
                                               own.get("attack_success_rate"))
    return block


def _normal(text: str) -> str:
    return " ".join(str(text).split())


def _successes(log: Path) -> set[tuple[Any, str]]:
    """(index, perturbed text with its spaces normalised) of a log's successful examples."""
    from robench.attacks.runner import read_log

    _, records = read_log(log)
    return {(rec.get("index"), _normal(rec.get("perturbed", ""))) for rec in records
            if rec.get("outcome") == "successful"}


@dataclass
class Audited:
    """One adversarial result the ratings went into."""

    path: Path
    run_id: str
    block: dict[str, Any]
    rows: int


@dataclass
class Applied:
    """What ``apply_ratings`` did: the results it wrote and the rows no result names (not counted)."""

    sheet: Path
    sha256: str
    ratings: list[Rating]
    results: list[Audited] = field(default_factory=list)
    unmatched: list[Rating] = field(default_factory=list)


def default_results(sheet: Path) -> list[Path]:
    """Where ``audit --ratings`` looks without ``--results``: the run folder the sheet sits in
    (``<run>/audit/<sheet>``), else ``runs`` (where ``robench train`` / ``run`` put run folders)."""
    run_dir = Path(sheet).resolve().parent.parent
    return [run_dir] if (run_dir / "run.json").is_file() else [Path("runs")]


def apply_ratings(sheet: Path | str, results: Sequence[Path | str] | None = None) -> Applied:
    """Read a filled sheet and write its ``audit`` block into each adversarial result of the rated run that
    names the rated logs (``artifacts``) and, where its log is there, holds the rated examples (a run id is
    not unique across task profiles). Rows no result names are left out and reported. Writes atomically,
    after every block is computed; the sheet's sha256 and the ratings go into ``details.audit``."""
    from robench.records import ResultFile, parse
    from robench.results import iter_result_files
    from robench.storage import atomic_write_json

    sheet = Path(sheet)
    ratings = read_ratings(sheet)
    digest = hashlib.sha256(sheet.read_bytes()).hexdigest()
    roots = [Path(r) for r in results] if results else default_results(sheet)
    for root in roots:
        if not root.exists():
            raise ConfigError(f"results folder {root} does not exist; pass --results DIR, the folder holding the "
                              "rated run (its results/adversarial.json)")
    run_ids = {r.run_id for r in ratings}
    applied = Applied(sheet=sheet, sha256=digest, ratings=ratings)
    writes: list[tuple[Path, dict[str, Any]]] = []
    counted: set[int] = set()
    beside: dict[Path, set[tuple[Any, str]]] = {}  # the successes of each log found beside a result

    def holds(log: Path, rating: Rating) -> bool:
        if not log.is_file():
            return True  # a result copied without its logs (a board's files/): its artifacts name them
        if log not in beside:
            beside[log] = _successes(log)
        return (rating.index, _normal(rating.perturbed)) in beside[log]

    seen: set[Path] = set()
    for root in roots:
        for path, result, _specs in iter_result_files(root):
            if result.evaluator != "adversarial" or result.run.run_id not in run_ids or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            arts = {Path(a).name: a for a in result.artifacts}
            run_dir = path.parent.parent
            mine = [r for r in ratings if r.run_id == result.run.run_id and r.log in arts
                    and holds(run_dir / arts[r.log], r)]
            if not mine:
                continue
            if result.metric_specs is None:
                raise ConfigError(f"{path} was written before result files declared their metrics; re-evaluate it "
                                  "('robench eval --suite adversarial --force') and run this command again")
            data = json.loads(path.read_text(encoding="utf-8"))
            block = audit_block(mine, data["metrics"])
            data["metrics"]["audit"] = block
            declared = list(data.get("metric_specs") or [])  # the file's declarations, plus the block's
            names = {s.get("name") for s in declared if isinstance(s, dict)}
            data["metric_specs"] = declared + [s.to_json() for s in AUDIT_SPECS if s.name not in names]
            data.setdefault("details", {})["audit"] = {
                "sheet": str(sheet), "sheet_sha256": digest,
                "rated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "rule": f"valid: label_kept yes and meaning >= {MIN_MEANING} of {MEANING_RANGE[1]}",
                "ratings": [{"recipe": r.recipe, "log": r.log, "index": r.index, "label_kept": r.label_kept,
                             "meaning": r.meaning} for r in mine]}
            parse(ResultFile, data)  # the file stays a valid result
            writes.append((path, data))
            applied.results.append(Audited(path=path, run_id=result.run.run_id, block=block, rows=len(mine)))
            counted.update(id(r) for r in mine)
    if not writes:
        where = ", ".join(str(r) for r in roots)
        raise ConfigError(f"no adversarial result of run {', '.join(sorted(run_ids))} under {where} names the rated "
                          "attack logs; pass --results DIR, the folder holding that run, or evaluate it first "
                          "('robench eval --run RUN --suite adversarial')")
    for path, data in writes:
        atomic_write_json(path, data)
    applied.unmatched = [r for r in ratings if id(r) not in counted]
    return applied
