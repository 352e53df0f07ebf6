"""The task files packaged with robench: installed as the package data ``robench._tasks`` (see pyproject.toml)
and read through importlib.resources (robench.tasks.packaged_tasks_dir)."""
