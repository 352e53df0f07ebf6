"""Tasks are data: ``tasks/*.yaml`` -> a validated :class:`TaskSpec` (:mod:`robench.tasks.spec`) ->
its sources read offline (:mod:`robench.tasks.sources`) -> the sets as ``datasets.Dataset`` objects
(:class:`TaskData`, :mod:`robench.tasks.data`). This package's names are the API the rest of robench
uses."""

from robench.tasks.data import TaskData, example_key, fingerprint, set_items
from robench.tasks.sources import hub_offline_message, source_path
from robench.tasks.spec import (
    TASKS_DIR,
    SetSpec,
    SourceSpec,
    StrictLoader,
    TaskSpec,
    apply_profile,
    data_hash,
    list_tasks,
    load_task,
    packaged_tasks_dir,
    parse_task,
    task_origin,
    task_path,
    task_source,
)

__all__ = ["TASKS_DIR", "SetSpec", "SourceSpec", "StrictLoader", "TaskData", "TaskSpec", "apply_profile", "data_hash",
           "example_key", "fingerprint", "hub_offline_message", "list_tasks", "load_task", "packaged_tasks_dir", "parse_task",
           "set_items", "source_path", "task_origin", "task_path", "task_source"]
