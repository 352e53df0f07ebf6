"""Regression baselines packaged with robench: installed as ``robench._baselines`` (see pyproject.toml);
``robench check --baseline NAME`` finds one by name."""
