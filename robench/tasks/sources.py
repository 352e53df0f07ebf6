"""Reading a task's sources: packaged assets, local files (csv, tsv, jsonl, json, parquet, lines) and
hub datasets, offline; each source's rows become texts and integer labels through its label map."""


import codecs
import logging
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robench.errors import ConfigError, OfflineError, RobenchError
from robench.tasks.spec import OUTSIDE_FIX, SourceSpec, is_outside, outside_paths_allowed_by_env


def _check_text_file(spec: SourceSpec, path: Path) -> None:
    """Before handing a text file to ``datasets``: it must be UTF-8 and hold data (not empty, not only a header)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = newlines = lines_with_text = 0
    pending = b""
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                data = exc.object
                start = done - len(pending) + exc.start
                line = newlines - pending.count(b"\n") + data[: exc.start].count(b"\n") + 1
                raise ConfigError(f"source {spec.name!r}: file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                                  f"at offset {start}, line {line}); re-save it as UTF-8") from None
            pending = decoder.getstate()[0]
            done += len(chunk)
            newlines += chunk.count(b"\n")
            if lines_with_text < 2:
                lines_with_text += sum(1 for ln in text.splitlines() if ln.strip())
            if not chunk:
                break
    if lines_with_text == 0:
        raise ConfigError(f"source {spec.name!r}: file {path} is empty; put the data in it or point the task "
                          "to another file")
    if spec.format in {"csv", "tsv"} and lines_with_text == 1:
        raise ConfigError(f"source {spec.name!r}: file {path} has no data rows (only a header line); put the data "
                          "in it or point the task to another file")


def source_path(spec: SourceSpec, task_file: Path | None) -> Path:
    """The file a ``file:`` source names: relative paths are read from the task file's folder only."""
    folder = (task_file.parent if task_file is not None else Path(".")).absolute()
    path = Path(os.path.normpath(folder / spec.file))  # an absolute spec.file replaces the folder
    if not spec.allow_outside_paths and not outside_paths_allowed_by_env() and is_outside(spec.file, folder):
        raise ConfigError(f"source {spec.name!r}: file {spec.file!r} is outside the task's folder {folder}; "
                          + OUTSIDE_FIX)
    return path


def resolve_file(spec: SourceSpec, task_file: Path | None) -> Path:
    from robench.assets import asset_file

    if spec.asset is not None:
        return asset_file(spec.asset, allow_outside=spec.allow_outside_paths or outside_paths_allowed_by_env())
    path = source_path(spec, task_file)
    if not path.is_file():
        raise ConfigError(f"source {spec.name!r}: file {spec.file} ({path}) not found; fix the path in the task file "
                          "(relative paths are read from the task file's folder)")
    return path


@contextmanager
def _datasets_offline() -> Iterator[None]:
    """Local files need no network, but ``datasets`` pings its download counter on every load unless
    it is offline: switch it offline for the load and restore the settings after. Its error log of a
    file it cannot parse is held back too: the caller turns that failure into one clear line."""
    import datasets.config as dc

    saved = (dc.HF_HUB_OFFLINE, dc.HF_DATASETS_OFFLINE, dc.HF_UPDATE_DOWNLOAD_COUNTS)
    logger = logging.getLogger("datasets")
    level = logger.level
    dc.HF_HUB_OFFLINE = dc.HF_DATASETS_OFFLINE = True
    dc.HF_UPDATE_DOWNLOAD_COUNTS = False
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        dc.HF_HUB_OFFLINE, dc.HF_DATASETS_OFFLINE, dc.HF_UPDATE_DOWNLOAD_COUNTS = saved
        logger.setLevel(level)


def _innermost(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def load_raw(spec: SourceSpec, task_file: Path | None, path: Path | None = None):
    import datasets

    datasets.disable_progress_bars()
    if spec.hub is not None:
        return _load_hub(spec)
    path = path or resolve_file(spec, task_file)
    fmt = spec.format
    if fmt != "parquet":
        _check_text_file(spec, path)
    builder, kwargs = {"csv": ("csv", {}), "tsv": ("csv", {"sep": "\t", "quoting": 3}), "jsonl": ("json", {}),
                       "json": ("json", {}), "parquet": ("parquet", {})}.get(fmt, ("text", {}))
    try:
        with _datasets_offline():
            ds = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    except Exception as exc:  # noqa: BLE001 - a file datasets cannot parse is a user error: one clear line
        inner = _innermost(exc)
        first = (str(inner).strip().splitlines() or [type(inner).__name__])[0][:200]
        if "corresponds to no data" in first:  # datasets' words for a file without rows
            raise ConfigError(f"source {spec.name!r}: file {path} has no data rows; put the data in it or point the "
                              "task to another file") from None
        raise ConfigError(f"source {spec.name!r}: file {path} could not be read as {fmt} ({type(inner).__name__}: "
                          f"{first}); fix the file or set the source's format") from None
    if len(ds) == 0:
        raise ConfigError(f"source {spec.name!r}: file {path} has no data rows; put the data in it or point the task "
                          "to another file")
    return ds


def hub_offline_message(spec: SourceSpec) -> str:
    hub = spec.hub or {}
    ident = hub.get("path", "?") + (f"/{hub['name']}" if hub.get("name") else "")
    return (f"hub dataset {ident} (source {spec.name!r}) cannot be downloaded: the Hugging Face hub is unreachable; "
            "run once with internet to cache it, or point the task's source to a local file (file: ...)")


def hub_dataset(hub: dict[str, Any]):
    """The one call that fetches a hub dataset: ``datasets.load_dataset(path, name, split=..., revision=...)``,
    from the local cache alone when the hub is unreachable. Tests stand fixtures in for this function
    (``tests/fixtures/hub``), so everything after it (columns, label maps, sets) runs as with the hub."""
    import datasets

    from robench.hub import use_cache_only_if_offline

    use_cache_only_if_offline()
    kwargs = {"revision": hub["revision"]} if hub.get("revision") else {}
    return datasets.load_dataset(hub["path"], hub.get("name"), split=hub.get("split", "train"), **kwargs)


def _load_hub(spec: SourceSpec):
    hub = spec.hub or {}
    try:
        return hub_dataset(hub)
    except RobenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear line
        from robench.hub import hub_reachable

        text = f"{type(exc).__name__}: {exc}"
        offline_markers = ("offline", "connection", "resolve", "network", "timed out", "unreachable",
                           "couldn't reach", "Max retries", "Name or service")
        if any(m.lower() in text.lower() for m in offline_markers) or not hub_reachable():
            raise OfflineError(hub_offline_message(spec)) from None
        if "scripts are no longer supported" in text:
            raise ConfigError(f"hub dataset {hub.get('path')} (source {spec.name!r}) is a loading script, which this "
                              "datasets version cannot run; use a parquet copy (hub: {revision: refs/convert/parquet} "
                              "where the hub has one) or a local file (file: ...)") from None
        raise ConfigError(f"hub dataset {hub.get('path')} (source {spec.name!r}) failed to load: "
                          f"{text.splitlines()[0]}; check path/name/split in the task file") from None


def _fields(values: list[Any]) -> list[str]:
    """The keys of the first mapping among ``values`` (a column of mappings, e.g. a hub Translation column)."""
    first = next((v for v in values if isinstance(v, dict)), None)
    return sorted(first) if first is not None else []


def column_values(ds, column: str, named: str, role: str = "text") -> list[Any]:
    """A whole column as a list (row access is slow). ``column`` is a column name, or a dotted path into a
    column of mappings (``translation.en``: the ``en`` field of each row's ``translation``), read when no
    column carries the dotted name itself. A missing column or field is one line naming what there is."""
    columns = list(ds.column_names)
    key = f"{role}_column"
    if column is None or column in columns:
        if column is None:
            raise ConfigError(f"{named}: no {role} column None (columns: {', '.join(columns)}); set {key} in the "
                              "task file")
        return ds.data.column(column).to_pylist()
    head, *path = column.split(".")
    if not path or head not in columns:
        listing = ", ".join(columns)
        raise ConfigError(f"{named}: no {role} column {column!r} (columns: {listing}); set {key} in the task file")
    values = ds.data.column(head).to_pylist()
    for depth, part in enumerate(path):
        where = ".".join([head, *path[:depth]])
        fields = _fields(values)
        if not fields:
            raise ConfigError(f"{named}: column {where!r} holds no mappings, so {column!r} names nothing; "
                              f"set {key} to a column (columns: {', '.join(columns)})")
        if part not in fields:
            raise ConfigError(f"{named}: column {where!r} has no field {part!r} (fields: {', '.join(fields)}); "
                              f"set {key}, e.g. {key}: {where}.{fields[0]}")
        values = [v.get(part) if isinstance(v, dict) else None for v in values]
    return values


def to_examples(spec: SourceSpec, ds, labels: list[str], with_labels: bool, origin: str | None = None,
                 dropped: dict[str, int] | None = None) -> tuple[list[Any], list[int]]:
    """The source's (texts, label indices): a text is a string, or for a sentence-pair source (two text
    columns, no ``join``) a (first, second) tuple. Rows left out are counted into ``dropped`` by reason:
    ``no_text`` (missing or blank), ``pattern`` (text_pattern did not match), ``no_label`` (missing or NaN
    label) and ``mapped_out`` (label_map to null, binarize's min_abs margin: left out on purpose)."""
    dropped = dropped if dropped is not None else {}

    def drop(reason: str) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1

    text_cols = spec.text_columns if spec.format != "lines" else ("text",)
    named = f"source {spec.name!r}" + (f" ({origin})" if origin else "")
    cells = [column_values(ds, col, named) for col in text_cols]
    for col, values in zip(text_cols, cells, strict=True):
        fields = _fields(values[:100])
        if fields:  # a column of mappings (a hub Translation column, say): the text is one of its fields
            raise ConfigError(f"{named}: text column {col!r} holds mappings with fields {', '.join(fields)}, not "
                              f"text; name one field, e.g. text_column: {col}.{fields[0]}")
    labels_raw = column_values(ds, spec.label_column, named, "label") if with_labels else None
    pattern = re.compile(spec.text_pattern) if spec.text_pattern else None
    texts: list[Any] = []
    ys: list[int] = []
    for i in range(len(cells[0])):
        parts = [values[i] for values in cells]
        if any(part is None for part in parts):
            drop("no_text")
            continue
        parts = [str(part) for part in parts]
        if pattern is not None:
            m = pattern.match(parts[0])
            if not m:
                drop("pattern")
                continue
            parts = [m.group(1)]
        parts = [part.strip() for part in parts]
        if not all(parts):
            drop("no_text")
            continue
        text: Any = parts[0] if len(parts) == 1 else spec.join.join(parts) if spec.join is not None else tuple(parts)
        y = -1
        if labels_raw is not None:
            try:
                y = _map_label(spec, labels_raw[i], labels)
            except _LabelProblem as exc:
                raise ConfigError(f"source {spec.name!r}{f' ({origin}, row {i + 1})' if origin else f' (row {i + 1})'}: "
                                  f"{exc}") from None
            if y is None:
                raw = labels_raw[i]
                missing = raw is None or (isinstance(raw, float) and math.isnan(raw)) or \
                    (isinstance(raw, str) and not raw.strip())
                drop("no_label" if missing else "mapped_out")
                continue
        texts.append(text)
        ys.append(y)
    return texts, ys


class _LabelProblem(ValueError):
    """A label cell that cannot be mapped; the caller names the source, file and row."""


def _map_label(spec: SourceSpec, raw: Any, labels: list[str]) -> int | None:
    if raw is None:
        return None
    if spec.binarize is not None:
        try:
            score = float(raw)
        except (TypeError, ValueError):
            raise _LabelProblem(f"score {raw!r} in column {spec.label_column!r} is not a number; binarize needs "
                                "numeric scores: fix the file, or use label_map for named labels") from None
        if math.isnan(score):
            return None  # a missing score, like an empty cell
        if abs(score - spec.binarize.get("threshold", 0.0)) < spec.binarize.get("min_abs", 0.0):
            return None
        return int(score >= spec.binarize.get("threshold", 0.0))
    if spec.label_map is not None:
        for key in (raw, str(raw)):
            if key in spec.label_map:
                name = spec.label_map[key]
                return None if name is None else labels.index(name)
        try:
            as_int = int(raw)
        except (TypeError, ValueError):
            as_int = None
        if as_int is not None and as_int in spec.label_map:
            name = spec.label_map[as_int]
            return None if name is None else labels.index(name)
        raise _LabelProblem(f"label value {raw!r} is not in label_map; add it (or map it to null)")
    if isinstance(raw, str):
        if raw in labels:
            return labels.index(raw)
        raise _LabelProblem(f"label {raw!r} is not one of the task labels {labels}; add a label_map")
    if isinstance(raw, float) and not raw.is_integer():
        raise _LabelProblem(f"label {raw!r} is not a whole number (a label index); fix the file, or use binarize "
                            "for scores or label_map for other values")
    value = int(raw)
    if not 0 <= value < len(labels):
        raise _LabelProblem(f"label index {value} is outside the task's {len(labels)} labels; add a label_map")
    return value
