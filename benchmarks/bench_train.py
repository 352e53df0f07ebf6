"""Training speed against the machine's roof: old configuration and new, side by side, in one run.

    python benchmarks/bench_train.py                          # packaged MiniLM, default task, batch 16
    python benchmarks/bench_train.py --model tiny-bert --steps 3 --warmup 1 --methods vanilla,ram

1. The roof: fp32 and bf16 matmul GFLOP/s on this machine (the best of a few GEMM shapes, the
   encoder's own among them).
2. A bare loop: ``model(**batch).loss.backward()``, clip, ``torch.optim.AdamW`` with its defaults,
   fp32; what a hand-written fine-tuning script does, and what robench did.
3. Every method's training step as the trainer runs it (Accelerate, the method's passes and hooks,
   clipping, AdamW) in the OLD configuration (fp32, default AdamW) and the NEW one (what
   ``robench train`` picks here: fused AdamW where the torch build has it, bf16 autocast where the
   hardware has native bf16; ``robench.hardware``).

Batches are the default task's training examples, 16 per batch, padded per batch to their own
longest text as the trainer's collator does. FLOPs per step are counted once per method with
``torch.utils.flop_counter`` (matmuls and attention; the optimiser's element-wise work is not
counted), so GFLOP/s and the fraction of the roof are comparable across methods. Times are
medians over the timed steps; each configuration starts with warm-up steps that are not timed.
Speed is measured here, never asserted in tests: run it alone on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from robench.hardware import fused_adamw_supported, make_adamw, native_bf16, size_threads, training_precision
from robench.methods import METHODS as METHOD_REGISTRY
from robench.methods import build_method
from robench.models import load_model, load_tokenizer, resolve_device
from robench.tasks import TaskData, load_task
from robench.train import param_groups, train_step

METHODS = ["vanilla", "r3f", "freelb", "alum", "smart", "ram"]


def roof(dtype: torch.dtype, device: torch.device, seconds: float = 0.6) -> float:
    """Best matmul GFLOP/s over a few shapes (the encoder's projections at batch 16 x 48 tokens among them)."""
    best = 0.0
    for m, k, n in ((768, 384, 1536), (768, 1536, 384), (1024, 1024, 1024), (2048, 2048, 2048)):
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            reps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t0) / 1e9)
    return best


def make_batches(model_name: str, n: int, batch_size: int, max_length: int, device: torch.device):
    from transformers import DataCollatorWithPadding

    tokenizer = load_tokenizer(model_name)
    train = TaskData(load_task("sentiment")).get("train")
    rows = train.select(range(min(len(train), n * batch_size)))
    enc = [tokenizer(t, truncation=True, max_length=max_length) for t in rows["text"]]
    collate = DataCollatorWithPadding(tokenizer)
    batches = []
    for i in range(0, len(enc), batch_size):
        batch = collate([{**e, "labels": y} for e, y in zip(enc[i:i + batch_size], rows["label"][i:i + batch_size],
                                                                strict=True)])
        batches.append({k: v.to(device) for k, v in batch.items()})
    return batches


def timed(step, batches, warmup: int, steps: int, device: torch.device) -> list[float]:
    times = []
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def count_flops(step, batches) -> float:
    """Mean FLOPs of one step over the batch cycle (not timed)."""
    from torch.utils.flop_counter import FlopCounterMode

    total = 0
    for batch in batches:
        with FlopCounterMode(display=False) as counter:
            step(batch)
        total += counter.get_total_flops()
    return total / len(batches)


def bare_loop(args, batches, device):
    model = load_model(args.model, num_labels=2, seed=0).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(batch):
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def trainer_step(name: str, args, batches, device, precision: str, fused: bool):
    """One method's step exactly as robench.train runs it, under the given precision and optimiser."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="bf16" if precision == "bf16" else "no")
    model = load_model(args.model, num_labels=2, seed=0)
    fields = {f.name for f in dataclasses.fields(METHOD_REGISTRY.get(name).Config)}
    method = build_method(name, {"diag_every": "0"} if "diag_every" in fields else {})
    hooks = [method, *method.extra_hooks()]
    optimizer, impl = make_adamw(param_groups(model, 0.01), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, device=device,
                                 fused=fused)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    for hook in hooks:
        hook.setup(model, batches, accelerator)

    def step(batch):
        train_step(method, hooks, model, batch, accelerator, optimizer, max_grad_norm=1.0)

    return step, impl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batches", type=int, default=8, help="distinct batches cycled through")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    device = resolve_device(args.device)
    threads = size_threads() if device.type == "cpu" else torch.get_num_threads()
    batches = make_batches(args.model, args.batches, args.batch_size, args.max_length, device)
    tokens = statistics.mean(int(b["input_ids"].shape[1]) for b in batches)
    new_precision = training_precision("auto", device)
    new_fused = fused_adamw_supported(device)
    roof32 = roof(torch.float32, device)
    roof16 = roof(torch.bfloat16, device)
    print(f"model {args.model}, device {device}, torch {torch.__version__}, {threads} threads, batch "
          f"{args.batch_size}, {len(batches)} batches (mean padded length {tokens:.1f}), {args.warmup} warm-up + "
          f"{args.steps} timed steps per configuration")
    print(f"roof: fp32 {roof32:.0f} GFLOP/s, bf16 {roof16:.0f} GFLOP/s (native bf16: {native_bf16(device)})")
    print(f"old configuration: fp32, default AdamW (foreach); new: {new_precision}, "
          f"{'fused' if new_fused else 'foreach'} AdamW")

    bare = bare_loop(args, batches, device)
    bare_flops = count_flops(bare, batches)
    bare_s = statistics.median(timed(bare, batches, args.warmup, args.steps, device))
    bare_eps = args.batch_size / bare_s
    print(f"\nbare fp32 loop (default AdamW): {bare_eps:.1f} ex/s, {bare_flops / bare_s / 1e9:.0f} GFLOP/s "
          f"({100 * bare_flops / bare_s / 1e9 / roof32:.0f}% of the fp32 roof)\n")

    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    header = (f"{'method':<9} {'old ex/s':>9} {'new ex/s':>9} {'new/old':>8} {'new/bare':>9} "
              f"{'old GFLOP/s (roof%)':>20} {'new GFLOP/s (roof%)':>20}")
    print(header)
    rows = []
    for name in names:
        out = {"name": name}
        for label, precision, fused in (("old", "fp32", False), ("new", new_precision, new_fused)):
            step, _impl = trainer_step(name, args, batches, device, precision, fused)
            flops = count_flops(step, batches) if label == "old" else out["flops"]
            out["flops"] = flops
            seconds = statistics.median(timed(step, batches, args.warmup, args.steps, device))
            out[label] = args.batch_size / seconds
            out[f"{label}_gflops"] = flops / seconds / 1e9
            out[f"{label}_roof"] = out[f"{label}_gflops"] / (roof16 if precision == "bf16" else roof32)
        rows.append(out)
        print(f"{name:<9} {out['old']:>9.1f} {out['new']:>9.1f} {out['new'] / out['old']:>7.2f}x "
              f"{out['new'] / bare_eps:>8.2f}x {out['old_gflops']:>12.0f} ({100 * out['old_roof']:>3.0f}%) "
              f"{out['new_gflops']:>12.0f} ({100 * out['new_roof']:>3.0f}%)", flush=True)
    vanilla = next((r for r in rows if r["name"] == "vanilla"), None)
    if vanilla is not None:
        print(f"\nnew vanilla / bare fp32 loop: {vanilla['new'] / bare_eps:.2f}x (target >= 1.5x); "
              "each method's new/old speed-up against vanilla's:")
        for r in rows:
            print(f"  {r['name']:<9} {r['new'] / r['old']:.2f}x ({r['new'] / r['old'] / (vanilla['new'] / vanilla['old']):.2f} "
                  "of vanilla's)")


if __name__ == "__main__":
    main()
