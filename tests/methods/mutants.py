"""Mutation check for the methods' tests (not a test module): apply each known mutation of a method's
released update rule to a scratch copy of the package, run ``tests/methods`` against it, and report
whether some test fails ("killed") or every test passes ("survived"). Every mutation here must be killed.

    python tests/methods/mutants.py            # all mutations
    python tests/methods/mutants.py smart-sign # one

The scratch copy lives in a temporary folder put first on PYTHONPATH, so the checkout is never edited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# name: (file under robench/, the exact original text, its mutant)
MUTATIONS = {
    "selective-no-inverse-p": ("methods/selective.py",
                               "scale = mask / (keep + KEEP_EPS) if self.config.unbiased else mask", "scale = mask"),
    "selective-no-keep-eps": ("methods/selective.py",
                              "scale = mask / (keep + KEEP_EPS) if self.config.unbiased else mask",
                              "scale = mask / keep if self.config.unbiased else mask"),
    "ram-no-grad-eps": ("methods/ram.py", "step = adv_eps * linf_normalize(g, eps=ROAST_GRAD_EPS)",
                        "step = adv_eps * linf_normalize(g)"),
    "selective-abs-importance": ("methods/selective.py", "torch._foreach_addcmul_(list(acc), grads, grads)",
                                 "torch._foreach_add_(list(acc), [g.abs() for g in grads])"),
    "selective-random-mask": ("methods/selective.py", "ranks = rank01(importance)",
                              "ranks = torch.rand(importance.shape, generator=self.generator, "
                              "device=importance.device)"),
    "smart-no-ascent": ("methods/smart.py", 'return eta * grad if step_norm == "released"',
                        'return 0 * grad if step_norm == "released"'),
    "smart-sign": ("methods/smart.py", 'return eta * grad if step_norm == "released"',
                   'return -eta * grad if step_norm == "released"'),
    "r3f-no-noise": ("methods/r3f.py", "return torch.empty_like(emb, dtype=torch.float32).uniform_(-eps, eps)",
                     "return torch.zeros_like(emb, dtype=torch.float32)"),
    "diagnostic-no-rng-restore": ("methods/diagnostics.py", "            rng.restore()\n", "            pass\n"),
}


def run(name: str) -> bool:
    """True when the mutation is killed (some test of tests/methods fails)."""
    path, original, mutant = MUTATIONS[name]
    with tempfile.TemporaryDirectory(prefix="robench-mutant-") as tmp:
        shutil.copytree(ROOT / "robench", Path(tmp) / "robench")
        target = Path(tmp) / "robench" / path
        text = target.read_text()
        if text.count(original) != 1:
            raise SystemExit(f"{name}: the original text is not found exactly once in robench/{path}")
        target.write_text(text.replace(original, mutant))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(ROOT / "tests")])}
        check = subprocess.run([sys.executable, "-c", "import robench, sys; print(robench.__file__)"], env=env,
                               capture_output=True, text=True, cwd=tmp)
        assert check.stdout.strip().startswith(tmp), "the mutant package is not the one imported"
        # the tests of tests/methods, but not the test that runs this script (it would recurse)
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               "--ignore", str(ROOT / "tests" / "methods" / "test_mutants.py"),
                               str(ROOT / "tests" / "methods")], env=env, capture_output=True, text=True, cwd=tmp)
        first = next((ln for ln in done.stdout.splitlines() if ln.startswith("FAILED")), "")
        print(f"{name}: {'killed' if done.returncode else 'SURVIVED'} {first}", flush=True)
        return done.returncode != 0


if __name__ == "__main__":
    names = sys.argv[1:] or list(MUTATIONS)
    survived = [n for n in names if not run(n)]
    sys.exit(1 if survived else 0)
