"""Training speed against the machine's roof, and what each speed-up buys, in one run.

    python benchmarks/bench_train.py                          # packaged MiniLM, default task, batch 16
    python benchmarks/bench_train.py --model tiny-bert --steps 3 --methods vanilla,ram --compile-methods none

Run it alone on an otherwise idle machine, in one process (every configuration shares it, so their
ratios are comparable). Speed is measured here, never asserted in tests. It reports:

1. The roof: fp32 and bf16 matmul GFLOP/s on this machine (the best of a few GEMM shapes).
2. The padding of an epoch (the task's whole train set, batches padded to their own longest example as
   the trainer's collator pads) under random batching and under ``--group-by-length``
   (``robench.sampling``): padding tokens over all tokens, per epoch, over ``--epochs`` epochs.
3. (a) A bare loop: ``model(**batch).loss.backward()``, clip, ``torch.optim.AdamW`` with its defaults,
   fp32: what a hand-written fine-tuning script does, and what robench did.
   Then every method of ``--methods`` as the trainer steps it (``robench.train.train_step``: Accelerate,
   the method's passes and hooks, clipping, AdamW) in the OLD configuration (fp32, default AdamW), and
   (b) the DEFAULT one (what ``robench train`` picks here: fused AdamW where the torch build has it, bf16
   autocast where the hardware has native bf16; ``robench.hardware``), (c) the default with
   length-grouped batches, and (d) for ``--compile-methods``, the default step of a
   ``torch.compile``-d model, on random and on grouped batches, with the compile time apart.
4. (e) The share of a step that the regulariser-alive diagnostic costs (one dropout-only forward pass
   under ``no_grad`` every ``diag_every`` = 10 steps; ``robench.methods.diagnostics``), for
   ``--diag-method``: its step at ``diag_every=1`` against ``diag_every=0``, scaled to one pass in 10.
   The method rows above run at ``diag_every=0``, so they time the training work alone.
5. One table of ratios: the default vanilla step against the bare loop (target: 2x with the speed-ups),
   and each method's step against vanilla's and its speed-up against vanilla's.

Which batches are timed: an epoch of the task's training set is cut into batches exactly as the trainer
cuts it (``robench.train.make_train_loader``, seed 0), once with random batching and once grouped by
length; from each epoch, ``--steps`` batches at evenly spaced quantiles of their padded size (rows x
padded length) are timed. Each configuration steps once through its batches untimed (warm-up: every
shape it is timed on has been seen once; FLOPs are counted here with ``torch.utils.flop_counter``:
matmuls and attention, not the optimiser), then once timed. Seconds per step are the MEAN over the
timed batches, the estimate of an epoch's mean step: length grouping changes the spread of batch
sizes by design, so a median over batches of different sizes would not give an epoch's time.
torch.compile is measured here only: ``robench train`` does not offer it (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time
from dataclasses import dataclass

import torch

from robench.hardware import fused_adamw_supported, make_adamw, native_bf16, resolve_precision, size_threads
from robench.methods import METHODS as METHOD_REGISTRY
from robench.methods import build_method
from robench.methods.base import RegularisedConfig
from robench.models import load_model, load_tokenizer, resolve_device
from robench.runspec import TrainConfig
from robench.tasks import TaskData, load_task
from robench.train import make_train_loader, param_groups, tokenize, train_step

DEFAULT_METHODS = "vanilla,alum,ram"
DIAG_EVERY = RegularisedConfig.diag_every  # the methods' default schedule of the diagnostic pass (10)
DIAG_LIMIT = 0.05  # the diagnostic's share of a step above which a cheaper schedule is worth it


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


# ---- the batches: an epoch cut as the trainer cuts it


def epochs_of_batches(args) -> dict[str, list[list[dict[str, torch.Tensor]]]]:
    """``args.epochs`` epochs of padded training batches, random and grouped by length, each cut by the
    trainer's own loader (seed 0) from the task's whole train set."""
    from transformers import DataCollatorWithPadding

    tokenizer = load_tokenizer(args.model)
    train_ds = tokenize(TaskData(load_task(args.task)).get("train"), tokenizer, args.max_length)
    out = {}
    for label, group in (("random", False), ("grouped", True)):
        cfg = TrainConfig(task=args.task, model=args.model, batch_size=args.batch_size, max_length=args.max_length,
                          group_by_length=group)
        generator = torch.Generator().manual_seed(cfg.seed)
        loader = make_train_loader(train_ds, cfg, DataCollatorWithPadding(tokenizer), generator)
        out[label] = [list(loader) for _ in range(args.epochs)]
    return out


def padding_of(batches: list[dict[str, torch.Tensor]]) -> tuple[int, int]:
    """(tokens the batches hold, padded; real tokens)."""
    return (sum(int(b["attention_mask"].numel()) for b in batches),
            sum(int(b["attention_mask"].sum()) for b in batches))


def stratified(batches: list[dict[str, torch.Tensor]], n: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """``n`` batches at evenly spaced quantiles of the epoch's padded sizes (in the epoch's order), so
    that the mean step over them estimates the epoch's mean step."""
    by_size = sorted(range(len(batches)), key=lambda i: (batches[i]["input_ids"].numel(), i))
    n = min(n, len(batches))
    picked = sorted({by_size[min(len(by_size) - 1, int((k + 0.5) * len(by_size) / n))] for k in range(n)})
    return [{k: v.to(device) for k, v in batches[i].items()} for i in picked]


def mean_tokens(batches) -> float:
    return statistics.fmean(int(b["input_ids"].numel()) for b in batches) / statistics.fmean(
        int(b["input_ids"].shape[0]) for b in batches)


# ---- timing


@dataclass
class Timing:
    seconds: float  # mean seconds per step over the timed batches
    median: float
    warm_seconds: float  # the untimed warm-up pass, in all (compilation included, for a compiled model)
    flops: float | None  # mean FLOPs per step (None: not counted)
    examples: float  # mean examples per step

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(step, batches, device: torch.device, warmup_passes: int, count_flops: bool = True) -> Timing:
    """Warm-up passes over ``batches`` (FLOPs counted in the first), then one timed pass."""
    from torch.utils.flop_counter import FlopCounterMode

    flops = 0.0
    t_warm = time.perf_counter()
    for p in range(warmup_passes):
        for batch in batches:
            if count_flops and p == 0:
                with FlopCounterMode(display=False) as counter:
                    step(batch)
                flops += counter.get_total_flops()
            else:
                step(batch)
    sync(device)
    warm = time.perf_counter() - t_warm
    times = []
    for batch in batches:
        sync(device)
        t0 = time.perf_counter()
        step(batch)
        sync(device)
        times.append(time.perf_counter() - t0)
    return Timing(statistics.fmean(times), statistics.median(times), warm,
                  flops / len(batches) if count_flops and warmup_passes else None,
                  statistics.fmean(int(b["labels"].shape[0]) for b in batches))


def bare_loop(args, device):
    model = load_model(args.model, num_labels=2, seed=0).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(batch):
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def trainer_step(name: str, args, setup_batches, device, precision: str, fused: bool, diag_every: int = 0,
                 compile_model: bool = False):
    """One method's step exactly as robench.train runs it, under the given precision and optimiser;
    ``diag_every`` for a method with the diagnostic; ``compile_model``: torch.compile the prepared model
    (as Accelerate's own dynamo option does, after its autocast wrapper) once the hooks' setup is done;
    it compiles lazily, at its first step."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="bf16" if precision == "bf16" else "no")
    model = load_model(args.model, num_labels=2, seed=0)
    method = build_method(name, {"diag_every": str(diag_every)} if has_diag(name) else {})
    hooks = [method, *method.extra_hooks()]
    optimizer, _impl = make_adamw(param_groups(model, 0.01), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, device=device,
                                  fused=fused)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    for hook in hooks:
        hook.setup(model, setup_batches, accelerator)
    if compile_model:  # dynamic shapes from the start: every batch has its own padded length
        model = torch.compile(model, dynamic=True)

    def step(batch):
        train_step(method, hooks, model, batch, accelerator, optimizer, max_grad_norm=1.0)

    return step


def has_diag(name: str) -> bool:
    return "diag_every" in {f.name for f in dataclasses.fields(METHOD_REGISTRY.get(name).Config)}


def compiled(name: str, args, lists, device, precision: str, fused: bool) -> dict:
    """(d): the default step of a compiled model on random, then grouped batches; compile time is the
    warm-up passes' excess over the same number of steps at the compiled speed."""
    import torch._dynamo

    torch._dynamo.reset()
    out: dict = {}
    try:
        step = trainer_step(name, args, lists["random"], device, precision, fused, compile_model=True)
        compile_s = 0.0
        for label in ("random", "grouped"):
            t = measure(step, lists[label], device, args.warmup, count_flops=False)
            out[label] = t
            compile_s += max(0.0, t.warm_seconds - args.warmup * len(lists[label]) * t.seconds)
        out["compile_s"] = compile_s
    except Exception as exc:  # noqa: BLE001 - any compiler failure is a finding, not a crash
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    torch._dynamo.reset()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration: batches at evenly "
                                                              "spaced quantiles of an epoch's padded sizes")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes over those batches first")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--max-length", type=int, default=TrainConfig.max_length)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="epochs whose padding is counted")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="methods to time (vanilla is always included)")
    parser.add_argument("--compile-methods", default="vanilla",
                        help="methods whose default step is also timed under torch.compile ('none': skip)")
    parser.add_argument("--diag-method", default="alum", help="method whose diagnostic pass is timed ('none': skip)")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1")
    device = resolve_device(args.device)
    threads = size_threads() if device.type == "cpu" else torch.get_num_threads()
    names = list(dict.fromkeys(["vanilla", *(m.strip() for m in args.methods.split(",") if m.strip())]))
    to_compile = [] if args.compile_methods.strip() == "none" else \
        [m.strip() for m in args.compile_methods.split(",") if m.strip()]
    for name in [*names, *to_compile, *([] if args.diag_method == "none" else [args.diag_method])]:
        METHOD_REGISTRY.get(name)  # an unknown name fails now, not after minutes
    if set(to_compile) - set(names):
        parser.error(f"--compile-methods {','.join(sorted(set(to_compile) - set(names)))}: not in --methods")
    if args.diag_method != "none" and not has_diag(args.diag_method):
        parser.error(f"--diag-method {args.diag_method} has no diagnostic pass (diag_every)")
    precision = resolve_precision("auto", device)
    fused = fused_adamw_supported(device)
    t_start = time.perf_counter()

    # ---- padding of an epoch, and the timed batches
    epochs = epochs_of_batches(args)
    lists = {label: stratified(e[0], args.steps, device) for label, e in epochs.items()}
    shares = {}
    for label, per_epoch in epochs.items():
        counts = [padding_of(b) for b in per_epoch]
        shares[label] = statistics.fmean((p - r) / p for p, r in counts)
        shares[label + "_padded"] = statistics.fmean(p for p, _ in counts)
    print(f"model {args.model}, task {args.task}, device {device}, torch {torch.__version__}, {threads} threads, "
          f"batch {args.batch_size}, {len(epochs['random'][0])} steps per epoch; {args.steps} timed steps per "
          f"configuration after {args.warmup} warm-up pass(es) over them")
    roof32, roof16 = roof(torch.float32, device), roof(torch.bfloat16, device)
    print(f"roof: fp32 {roof32:.0f} GFLOP/s, bf16 {roof16:.0f} GFLOP/s (native bf16: {native_bf16(device)})")
    print(f"old configuration: fp32, default AdamW (foreach); default: {precision}, "
          f"{'fused' if fused else 'foreach'} AdamW")
    saved = 1 - shares["grouped_padded"] / shares["random_padded"]
    print(f"padding per epoch (mean of {args.epochs} epochs, seed 0): random batching {100 * shares['random']:.1f}% "
          f"of the tokens, --group-by-length {100 * shares['grouped']:.1f}%; the grouped epoch holds {100 * saved:.1f}% "
          f"fewer tokens ({shares['grouped_padded']:.0f} against {shares['random_padded']:.0f}); timed batches' mean "
          f"padded length {mean_tokens(lists['random']):.1f} / {mean_tokens(lists['grouped']):.1f} tokens")

    def roof_pct(t: Timing, prec: str) -> str:
        if t.flops is None:
            return "-"
        return f"{t.flops / t.seconds / 1e9:.0f} GFLOP/s, {100 * t.flops / t.seconds / 1e9 / (roof16 if prec == 'bf16' else roof32):.0f}%"

    bare = measure(bare_loop(args, device), lists["random"], device, args.warmup)
    print(f"\n(a) bare fp32 loop, default AdamW: {bare.seconds:.3f} s/step ({bare.examples_per_second:.1f} ex/s; "
          f"{roof_pct(bare, 'fp32')} of the fp32 roof)", flush=True)

    rows: dict[str, dict] = {}
    print(f"\n{'method':<9} {'config':<30} {'s/step':>7} {'median':>7} {'ex/s':>7}  GFLOP/s, roof")
    for name in names:
        r: dict = {}
        for key, label, prec, fus, batches in (
                ("old", "old (fp32, default AdamW)", "fp32", False, "random"),
                ("new", f"(b) default ({precision}, {'fused' if fused else 'foreach'})", precision, fused, "random"),
                ("grouped", "(c) default + group_by_length", precision, fused, "grouped")):
            t = measure(trainer_step(name, args, lists[batches], device, prec, fus), lists[batches], device,
                        args.warmup)
            r[key] = t
            print(f"{name:<9} {label:<30} {t.seconds:>7.3f} {t.median:>7.3f} {t.examples_per_second:>7.1f}  "
                  f"{roof_pct(t, prec)}", flush=True)
        if name in to_compile:
            c = compiled(name, args, lists, device, precision, fused)
            r["compiled"] = c
            if "error" in c:
                print(f"{name:<9} (d) default + torch.compile: FAILED ({c['error']}): it does not pay", flush=True)
            else:
                for label in ("random", "grouped"):
                    t = c[label]
                    print(f"{name:<9} {'(d) + torch.compile, ' + label:<30} {t.seconds:>7.3f} {t.median:>7.3f} "
                          f"{t.examples_per_second:>7.1f}", flush=True)
        rows[name] = r

    diag = None
    if args.diag_method != "none":
        m = args.diag_method
        off = rows[m]["new"] if m in rows else measure(trainer_step(m, args, lists["random"], device, precision,
                                                                    fused), lists["random"], device, args.warmup)
        on = measure(trainer_step(m, args, lists["random"], device, precision, fused, diag_every=1),
                     lists["random"], device, args.warmup, count_flops=False)
        per_pass = max(0.0, on.seconds - off.seconds)
        share = per_pass / DIAG_EVERY / (off.seconds + per_pass / DIAG_EVERY)
        diag = {"method": m, "pass": per_pass, "step": off.seconds, "share": share}
        print(f"\n(e) {m}'s diagnostic pass: {per_pass:.3f} s ({100 * per_pass / off.seconds:.1f}% of a step at "
              f"diag_every=1 vs 0); at the default diag_every={DIAG_EVERY}: {100 * share:.1f}% of a step")
        if share > DIAG_LIMIT:
            every = math.ceil(per_pass * (1 - DIAG_LIMIT) / (DIAG_LIMIT * off.seconds))
            print(f"    over {100 * DIAG_LIMIT:.0f}%: diag_every={every} would keep it under (diag_every is part of "
                  "the run key: changing the default changes every run's key)")
        else:
            print(f"    under {100 * DIAG_LIMIT:.0f}%: the schedule stays (no cheaper one needed)")

    # ---- the table of ratios
    v = rows["vanilla"]
    v_best = v["grouped"].seconds
    print("\nratios of seconds per step (means over the timed batches). old/new, old/best: the speed-up of the "
          "default, and of the default + group_by_length ('best'), over the old configuration; bare/best: the bare "
          "loop's step over this one's best; vs vanilla X: this method's step over vanilla's in configuration X; "
          "speed-up / vanilla: old/best over vanilla's old/best (1.00: the same speed-up)")
    print(f"{'method':<9} {'old/new':>8} {'old/best':>9} {'bare/best':>10} {'vs vanilla old':>15} "
          f"{'vs vanilla new':>15} {'vs vanilla best':>16} {'speed-up / vanilla':>19}")
    for name, r in rows.items():
        up_new, up_best = r["old"].seconds / r["new"].seconds, r["old"].seconds / r["grouped"].seconds
        v_up = v["old"].seconds / v_best
        print(f"{name:<9} {up_new:>7.2f}x {up_best:>8.2f}x {bare.seconds / r['grouped'].seconds:>9.2f}x "
              f"{r['old'].seconds / v['old'].seconds:>15.2f} {r['new'].seconds / v['new'].seconds:>15.2f} "
              f"{r['grouped'].seconds / v_best:>16.2f} {up_best / v_up:>19.2f}")
    vs_bare_new = bare.seconds / v["new"].seconds
    vs_bare_best = bare.seconds / v_best
    print(f"\nvanilla default step / bare fp32 loop: {vs_bare_new:.2f}x faster; with --group-by-length: "
          f"{vs_bare_best:.2f}x (target >= 2x: {'met' if vs_bare_best >= 2 else 'NOT met'})")
    for name, r in rows.items():
        c = r.get("compiled")
        if not c:
            continue
        if "error" in c:
            print(f"torch.compile ({name}): failed, does not pay ({c['error']})")
            continue
        gain = r["new"].seconds - c["random"].seconds
        gain_g = r["grouped"].seconds - c["grouped"].seconds
        steps_per_run = len(epochs["random"][0]) * TrainConfig.epochs
        pays = gain > 0.02 * r["new"].seconds and c["compile_s"] < gain * steps_per_run
        even = f"break-even after {c['compile_s'] / gain:.0f} steps" if gain > 0 else "never breaks even"
        print(f"torch.compile ({name}): compile {c['compile_s']:.1f} s; step {c['random'].seconds:.3f} s against "
              f"{r['new'].seconds:.3f} eager ({r['new'].seconds / c['random'].seconds:.2f}x), grouped "
              f"{c['grouped'].seconds:.3f} against {r['grouped'].seconds:.3f} ({r['grouped'].seconds / c['grouped'].seconds:.2f}x, "
              f"{gain_g:+.3f} s); {even} ({steps_per_run} steps in a default run): "
              f"{'it pays' if pays else 'it does not pay'} on this machine")
    if diag is not None:
        print(f"diagnostic pass ({diag['method']}): {100 * diag['share']:.1f}% of a step at diag_every={DIAG_EVERY} "
              f"({'over' if diag['share'] > DIAG_LIMIT else 'under'} {100 * DIAG_LIMIT:.0f}%)")
    print(f"padding per epoch: {100 * shares['random']:.1f}% random, {100 * shares['grouped']:.1f}% grouped "
          f"({100 * saved:.1f}% fewer tokens per epoch)")
    print(f"benchmark wall time: {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
