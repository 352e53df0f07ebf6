"""Checkpoints robench did not train: a folder saved with ``save_pretrained`` or a hub id.

``register`` writes an ordinary run folder for such a checkpoint: a ``run.json`` that names its source
(folder, or hub id and revision), the fingerprint of its weights and ``"trained_outside_robench":
true``, with no copy of the weights. Every evaluator, the prediction cache, the result files and the
board then work as for a trained run; ``load`` reads the weights from the source (safetensors only)
and checks that they are still the ones registered.

Labels are matched by name: the model's ``id2label`` onto the task's labels (case and spacing aside).
A checkpoint with placeholder names (``LABEL_0``) or other names needs ``--label-map
negative=0,positive=1`` (task label = model output index). Outputs are put in the task's label order
by a forward hook on the model, so predictions and attacks see the task's order.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from robench.configs import name_list
from robench.errors import ConfigError, OfflineError, RobenchError
from robench.identity import RunIdentity, model_label
from robench.outputs import guard_run_out
from robench.records import RUN_FILE, RUN_SCHEMA, RunRecord, parse, read_json, to_json
from robench.storage import atomic_write_json, file_sha256, provenance

METHOD = "external"  # the method label of a checkpoint trained outside robench
WEIGHT_PATTERNS = ("model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors")
HUB_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json", "tokenizer*", "vocab*", "merges.txt",
             "special_tokens_map.json", "added_tokens.json", "spm.model", "sentencepiece.bpe.model"]


def parse_label_map(text: str | dict[str, int] | None) -> dict[str, int] | None:
    """``"negative=0,positive=1"`` -> ``{"negative": 0, "positive": 1}`` (a dict passes through)."""
    if text is None or isinstance(text, dict):
        return text
    out: dict[str, int] = {}
    for part in name_list(text):
        name, eq, index = part.partition("=")
        if not eq or not name.strip() or not index.strip().isdigit():
            raise ConfigError(f"bad --label-map entry {part!r}; give task-label=model-output-index pairs separated "
                              "by commas, e.g. --label-map negative=0,positive=1")
        out[name.strip()] = int(index)
    if not out:
        raise ConfigError("empty --label-map; give pairs such as negative=0,positive=1")
    return out


def label_order(id2label: dict[Any, str], task_labels: list[str], label_map: dict[str, int] | None,
                model: str) -> list[int]:
    """For each task label, the model output index that scores it."""
    n = len(id2label)
    names = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]
    shown = f"model {model!r} outputs [{', '.join(names)}], task labels [{', '.join(task_labels)}]"
    if n != len(task_labels):
        raise ConfigError(f"label count mismatch: {shown}; evaluate it on a task with {n} labels")
    if label_map is not None:
        if set(label_map) != set(task_labels) or sorted(label_map.values()) != list(range(n)):
            raise ConfigError(f"--label-map {','.join(f'{k}={v}' for k, v in label_map.items())} must give each task "
                              f"label one distinct output index 0..{n - 1}: {shown}")
        return [label_map[name] for name in task_labels]
    key = {name.strip().lower(): i for i, name in enumerate(names)}
    if len(key) == n and all(t.strip().lower() in key for t in task_labels):
        return [key[t.strip().lower()] for t in task_labels]
    example = ",".join(f"{t}={i}" for i, t in enumerate(task_labels))
    raise ConfigError(f"label names do not match: {shown}; pass --label-map {example} (task label = model output "
                      "index) if that is what the outputs mean")


def weights_fingerprint(folder: Path) -> str:
    """The checkpoint's weights fingerprint: ``file_sha256`` of its one safetensors file, as a robench run
    records it (so an outside copy of a robench run is recognised as the same weights), or of its shards
    and index together. Memoised per file size and modification time: one command hashes a file once."""
    files = sorted(p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern))
    if not files:
        pickled = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        hint = (f" (it has {', '.join(pickled)}: pickle files, which robench never loads; re-save the model with "
                "save_pretrained(..., safe_serialization=True))" if pickled else "")
        raise ConfigError(f"checkpoint {folder} has no safetensors weights{hint}")
    hashes = [_file_hash(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    if len(files) == 1:
        return hashes[0]
    return hashlib.sha256("".join(f"{p.name}:{h}\n" for p, h in zip(files, hashes, strict=True)).encode()
                          ).hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a changed file is hashed again
    return file_sha256(Path(path))


def resolve(model: str, revision: str | None = None) -> tuple[Path, str, str | None]:
    """(local folder, kind "folder" | "hub", resolved revision) of a checkpoint name."""
    from robench.models import model_source

    if (Path(model) / RUN_FILE).is_file():
        raise ConfigError(f"--model {model} is a robench run; evaluate it with --run {model}")
    source = model_source(model)  # a folder (checked: a folder holding config.json), or a hub id
    if Path(source).is_dir():
        return Path(source).resolve(), "folder", None
    from huggingface_hub import snapshot_download

    from robench.hub import use_cache_only_if_offline

    offline = use_cache_only_if_offline()
    try:
        local = Path(snapshot_download(model, revision=revision, allow_patterns=HUB_FILES))
    except Exception as exc:  # noqa: BLE001 - any hub failure is one line
        if offline or "offline" in str(exc).lower() or "connect" in str(exc).lower():
            raise OfflineError(f"model {model!r} is a hub id that is not in the local cache and the Hugging Face hub "
                               "is unreachable; download it once with internet, or pass a local folder saved with "
                               "save_pretrained") from None
        raise ConfigError(f"hub model {model!r} could not be downloaded ({type(exc).__name__}: "
                          f"{(str(exc).splitlines() or [''])[0][:200]}); check the id and --revision") from None
    return local, "hub", local.name  # snapshot folders are named by their commit


def register(model: str, task: str = "sentiment", out: Path | str | None = None, *, label_map: Any = None,
             revision: str | None = None, profile: str | None = None, limit: int | None = None,
             max_length: int = 128, runs_dir: Path | str = "runs", force: bool = False,
             name: str | None = None) -> Path:
    """Write (or find) the run folder of an outside checkpoint; returns it. The same checkpoint registered
    again at the same place with the same task, profile, data limit and label order reuses the folder (and its
    results, ``force`` included: which results to recompute is the evaluation's ``force``); anything else there
    is an error, or with ``force`` replaces the registration and removes the results made under it. ``name``:
    the model's name on the board (default: the hub id, or the checkpoint folder's name)."""
    from transformers import AutoConfig

    from robench.models import usable_positions
    from robench.tasks import load_task, task_source

    local, kind, resolved = resolve(model, revision)
    spec = load_task(task, profile, limit)
    config = AutoConfig.from_pretrained(local)
    label_map = parse_label_map(label_map)
    order = label_order(config.id2label or {}, spec.labels, label_map, model)
    positions = usable_positions(config)
    length = min(max_length, positions) if positions else max_length
    name = name or (model_label(model) if kind == "hub" else local.name)
    ident = RunIdentity(task=str(task), model=name, method=METHOD, seed=0, profile=profile, limit=limit)
    out = Path(out) if out is not None else ident.run_dir(runs_dir)
    fingerprint = weights_fingerprint(local)
    source = {"kind": kind, "source": model if kind == "hub" else str(local), "revision": resolved,
              "folder": str(local), "label_order": order, "label_map": label_map,
              "trained_outside_robench": True}
    if (out / RUN_FILE).is_file():
        old = read_json(out / RUN_FILE)
        old = old if isinstance(old, dict) else {}
        was = old.get("task") or {}
        differs = [what for what, ok in (
            ("model", (old.get("external") or {}).get("source") == source["source"]),
            ("weights", old.get("weights_fingerprint") == fingerprint),
            ("label order", (old.get("external") or {}).get("label_order") == order),
            ("task", was.get("data_hash") == spec.data_hash),
            ("profile", (was.get("profile") or "default") == (profile or "default")),
            ("data limit", was.get("limit") == limit),
            ("max length", (old.get("config") or {}).get("max_length") == length),
            ("name", (old.get("model") or {}).get("name") == name)) if not ok]
        if not differs:
            return out
        if not force:
            raise ConfigError(f"run folder {out} was registered differently ({', '.join(differs)} differ) from "
                              f"{model!r} now; pass --out elsewhere, or --force to register it again there (its "
                              "results are then recomputed)")
    guard_run_out(out, force)
    if out.is_dir():  # --force over another registration: its results are not this one's
        import shutil

        from robench.outputs import RUN_SUBDIRS

        for sub in RUN_SUBDIRS:
            shutil.rmtree(out / sub, ignore_errors=True)
    record = {
        "schema": RUN_SCHEMA,
        "run_id": ident.run_id,
        "task": {"name": spec.name, "source": task_source(task), "profile": profile or "default", "limit": limit,
                 "spec_hash": spec.spec_hash, "data_hash": spec.data_hash, "labels": spec.labels},
        "model": {"name": name, "source": source["source"], "revision": resolved},
        "method": {"name": METHOD, "config": {}, "selective": False},
        "external": source,
        "seed": 0,
        "config": {"max_length": length, "model": model, "task": str(task)},
        "training": {},
        "weights_fingerprint": fingerprint,
        "files": [RUN_FILE],
        **provenance(),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RUN_FILE, to_json(parse(RunRecord, record)))  # checked by its type
    return out


def load(record: RunRecord):
    """Model and tokenizer of a registered checkpoint, outputs in the task's label order."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from robench.models import align_padding, prepare_tokenizer

    ext = record.external or {}
    folder = Path(ext["folder"])
    if not folder.is_dir():
        raise ConfigError(f"checkpoint folder {folder} (registered in run.json) is gone; register the model again "
                          "with 'robench eval --model ...'")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    except RobenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged files: one line
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"checkpoint {folder} could not be loaded ({type(exc).__name__}: {first})") from None
    align_padding(model, tokenizer)
    order = list(ext.get("label_order") or [])
    if order and order != list(range(len(order))):
        import torch

        index = torch.tensor(order)

        def reorder(_module, _inputs, output):
            output["logits"] = output["logits"].index_select(-1, index.to(output["logits"].device))
            return output

        model.register_forward_hook(reorder)
    return model, tokenizer
