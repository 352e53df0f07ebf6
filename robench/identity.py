"""What names a run and where its files live: the one builder of run ids, run folders, method labels
(``ram+selective``), model folder names, the board's task label, and result file paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_SUBDIR = "results"


def result_path(run_dir: Path, evaluator: str, limit: int | None = None) -> Path:
    """``results/<evaluator>.json``; a result computed under an evaluation ``--limit`` gets its own
    ``results/<evaluator>.limit<N>.json`` (and its own board row), so it never replaces the full one."""
    suffix = f".limit{int(limit)}" if limit is not None else ""
    return Path(run_dir) / RESULTS_SUBDIR / f"{evaluator}{suffix}.json"


SELECTIVE_SUFFIX = "+selective"


def method_label(method: str, selective: bool = False) -> str:
    """The method as the board and run folders name it: ``ram``, ``r3f+selective``."""
    return f"{method}{SELECTIVE_SUFFIX if selective else ''}"


def parse_method_label(label: str) -> tuple[str, bool]:
    """``"r3f+selective"`` -> ``("r3f", True)``."""
    if label.endswith(SELECTIVE_SUFFIX):
        return label[: -len(SELECTIVE_SUFFIX)], True
    return label, False


def model_label(model: str) -> str:
    """A model as a folder name: a local folder's name, or the hub id with ``/`` -> ``--``."""
    return Path(model).name if Path(model).exists() else model.replace("/", "--")


@dataclass(frozen=True)
class RunIdentity:
    """What names a run: task (profile, limit), model, method (+ selective) and seed.

    The one builder of run ids, run folders and the task label the board groups by.
    """

    task: str
    model: str
    method: str
    selective: bool = False
    seed: int = 0
    profile: str | None = None
    limit: int | None = None

    @property
    def task_name(self) -> str:
        return Path(self.task).stem

    @property
    def method_label(self) -> str:
        return method_label(self.method, self.selective)

    @property
    def run_id(self) -> str:
        return f"{self.task_name}/{self.model}/{self.method_label}/seed{self.seed}"

    def run_dir(self, root: Path | str = "runs") -> Path:
        profile = f"-{self.profile}" if self.profile and self.profile != "default" else ""
        limit = f"-limit{self.limit}" if self.limit else ""
        return Path(root) / f"{self.task_name}{profile}{limit}" / model_label(self.model) / self.method_label / f"seed{self.seed}"


def task_label(task: str, profile: str | None, limit: int | None, train_limit: Any = ...) -> str:
    """The board's task label: the name, plus the profile and data limit when not the default. A result
    evaluated under a limit other than its run's training limit says both, so it never shares a row
    with a run trained under that limit: a run trained on all the data (``train_limit`` None) and evaluated
    on 16 examples is "(eval limit 16)", never "(limit 16)", the label of a run trained on 16. (Result files
    written before the two limits were recorded apart are read with ``train_limit = limit``.)"""
    if train_limit is ...:  # not given: the run was trained on the data it is evaluated on
        train_limit = limit
    if limit and limit != train_limit:
        limits = [f"limit {train_limit}" if train_limit else None, f"eval limit {limit}"]
    else:
        limits = [f"limit {limit}" if limit else None]
    extras = [p for p in (profile if profile not in (None, "default") else None, *limits) if p]
    return f"{task} ({', '.join(extras)})" if extras else str(task)
