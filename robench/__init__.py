"""robench: robustness benchmark suite and leaderboard CLI for fine-tuned language models."""

__version__ = "0.1.0"
