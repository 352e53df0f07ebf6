"""On-disk caches of the attacks' work that does not depend on the attacked model, keyed by text.

Every run of a board attacks the same sampled examples, so the same texts come back run after run: the
spaCy tagger's tags of a candidate text, the sentence encoder's vector of a text (or of a window of one),
WordNet's synonyms of a word. Their values depend only on the text and on the resource that computes them
(the tagger, the encoder and its precision, WordNet), never on the victim model, the constraint preset or
its thresholds (the constraints compare these values against their thresholds every time), so they are
computed once and read back by every later run, in any process.

* One SQLite file per namespace, ``<folder>/<namespace>.v<SCHEMA>.sqlite``; the folder is
  ``$ROBENCH_CACHE_DIR``, else ``attacks`` in robench's cache folder (``$ROBENCH_CACHE``, else
  ``~/.cache/robench``: ``robench.split_asset.cache_path``). ``ROBENCH_ATTACK_CACHE=0`` turns the on-disk layer off (every value is then
  computed, as before); deleting the folder clears it.
* A key is the SHA-256 of (schema, namespace, the resource's identity, the exact text): another spaCy model or
  version, other encoder weights, precision, device or torch version, other WordNet files miss.
* Values are JSON (tags, word lists) or float32 bytes (vectors), never pickle; each row carries a CRC32 of
  its text and value, and a row that fails it, or fails to decode, is a miss (and is written again).
* Writes are SQLite transactions (WAL journal, a busy timeout): two processes may share a folder. A crash
  leaves the last committed state. A file SQLite cannot read (truncated, overwritten) is deleted and
  rebuilt; any error of the cache itself (locked, disk full, read-only folder) is a miss, never an
  exception: the cache can only save work, not change or stop an attack.

Callers keep an in-memory layer in front (``register_memory`` lets ``clear_memory`` empty them all, as a
fresh process would start) and go to disk only for what memory misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import weakref
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA = 1  # bump when a key or a value's meaning changes: the files of other versions are never read
DIR_ENV = "ROBENCH_CACHE_DIR"
SWITCH_ENV = "ROBENCH_ATTACK_CACHE"
ROOT_ENV = "ROBENCH_CACHE"  # robench's cache root (robench.split_asset.CACHE_ENV)
_OFF = {"0", "false", "no", "off"}
TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction
_CHUNK = 500  # texts per SELECT (SQLite's parameter limit is 32766 since 3.32; stay far below)


def enabled() -> bool:
    """Whether the on-disk layer is on (``ROBENCH_ATTACK_CACHE`` is not 0/false/no/off)."""
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in _OFF


def cache_dir() -> Path:
    """The folder of the attack caches (see the module docstring); not created here."""
    from robench.split_asset import cache_path

    explicit = os.environ.get(DIR_ENV)
    return Path(explicit).expanduser() if explicit else cache_path() / "attacks"


@lru_cache(maxsize=32)
def files_fingerprint(folder: str, names: tuple[str, ...] | None = None) -> str:
    """SHA-256 (16 hex digits) of the files of ``folder`` (all of them, recursively, or ``names``): their
    relative paths, sizes and bytes. Computed once per process (about 70 ms for MiniLM's 90 MB)."""
    base = Path(folder)
    paths = sorted(base / n for n in names) if names is not None else sorted(p for p in base.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for path in paths:
        rel = path.relative_to(base).as_posix()
        h.update(f"{rel}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:16]


def package_version(name: str) -> str | None:
    """An installed distribution's version (None when it is not installed), without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------------
# Codecs: value <-> bytes (no pickle)


class JsonCodec:
    """JSON values (lists of strings, numbers...); ``check(value)`` rejects a decoded value of the wrong shape."""

    def __init__(self, check: Callable[[Any], bool] | None = None) -> None:
        self.check = check

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def decode(self, blob: bytes) -> Any:
        value = json.loads(bytes(blob).decode("utf-8"))
        if self.check is not None and not self.check(value):
            raise ValueError("cached value of the wrong shape")
        return value


def is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


class Float32Codec:
    """A float32 vector of ``dim`` values, stored as its exact bytes (little-endian)."""

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)

    def encode(self, value) -> bytes:
        import numpy as np

        arr = np.asarray(value)
        if arr.dtype != np.float32 or arr.shape != (self.dim,):
            raise ValueError(f"expected a float32 vector of {self.dim} values, got {arr.dtype} {arr.shape}")
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()

    def decode(self, blob: bytes):
        import numpy as np

        if len(blob) != 4 * self.dim:
            raise ValueError("cached vector of the wrong length")
        return np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32)  # a writable native-order copy


# --------------------------------------------------------------------------------------------------
# Statistics and the in-memory layers in front


_STATS: dict[str, Counter] = {}
_MEMORY: list[Callable[[], None]] = []


def _count(namespace: str, what: str, n: int = 1) -> None:
    if n:
        _STATS.setdefault(namespace, Counter())[what] += n


def stats() -> dict[str, dict[str, int]]:
    """Per namespace: ``disk_hits``, ``disk_misses`` (looked up, not found), ``computed`` (values the callers
    computed), ``written`` (rows stored), ``damaged`` (rows that failed their check: misses), ``errors`` (cache
    errors treated as misses) and ``rebuilt`` (unreadable files deleted)."""
    return {ns: dict(c) for ns, c in sorted(_STATS.items())}


def reset_stats() -> None:
    _STATS.clear()


def count_computed(namespace: str, n: int) -> None:
    """Callers report the values they had to compute (neither memory nor disk held them)."""
    _count(namespace, "computed", n)


def register_memory(clear: Callable[[], None]) -> Callable[[], None]:
    """Register the ``clear`` function of an in-memory layer (``clear_memory`` calls them all)."""
    _MEMORY.append(clear)
    return clear


def clear_memory() -> None:
    """Empty every in-memory layer of the attack caches (as a fresh process starts); the disk is untouched."""
    for clear in list(_MEMORY):
        clear()


# --------------------------------------------------------------------------------------------------
# The on-disk store


_CREATE = ("CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, ident TEXT NOT NULL, text TEXT NOT NULL, "
           "value BLOB NOT NULL, crc INTEGER NOT NULL) WITHOUT ROWID")


def _crc(text: str, value: bytes) -> int:
    return zlib.crc32(value, zlib.crc32(text.encode("utf-8")))


def _storable(text: str) -> bool:
    """Whether SQLite can hold the text (valid UTF-8: no lone surrogates); other texts are never cached."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_corruption(exc: BaseException) -> bool:
    """A file SQLite cannot read (not a database, malformed), as opposed to a transient error (locked, busy,
    disk full, read-only), which is only a miss."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


class TextCache:
    """One namespace of persistent values keyed by text, for one resource identity.

    ``identity`` is a callable returning a JSON-serialisable mapping that names everything besides the text the
    value depends on (model name and version, a fingerprint of its files, precision...); it is called on each
    disk access (callers make it cheap), so a changed identity takes effect at once. ``get_many`` returns the
    stored values it can read; ``put_many`` stores values. Neither ever raises for the cache's own failures."""

    def __init__(self, namespace: str, identity: Callable[[], Mapping[str, Any]], codec) -> None:
        if not namespace.replace("_", "").isalnum():
            raise ValueError(f"namespace must be alphanumeric (with _), got {namespace!r}")
        self.namespace = namespace
        self.identity = identity
        self.codec = codec
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn_key: tuple[int, str] | None = None  # (pid, path) the connection was opened for
        self._ident_memo: tuple[str, str] | None = None  # (json of the identity, its digest)
        _STORES.add(self)

    # ------------------------------------------------------------------ keys

    def ident(self) -> str | None:
        """Digest of (schema, namespace, identity); None when the identity cannot be computed (the resource is
        missing: its own loader then says so) or is not JSON."""
        try:
            spec = json.dumps({"schema": SCHEMA, "namespace": self.namespace, "identity": self.identity()},
                              sort_keys=True, ensure_ascii=False)
        except Exception:  # noqa: BLE001 - a cache can only miss; the computation reports the real error
            _count(self.namespace, "errors")
            return None
        if self._ident_memo is None or self._ident_memo[0] != spec:
            self._ident_memo = (spec, hashlib.sha256(spec.encode()).hexdigest()[:32])
        return self._ident_memo[1]

    @staticmethod
    def key(ident: str, text: str) -> bytes:
        return hashlib.sha256(f"{ident}\0{text}".encode()).digest()

    def path(self) -> Path:
        return cache_dir() / f"{self.namespace}.v{SCHEMA}.sqlite"

    # ------------------------------------------------------------------ connection

    def _connection(self) -> sqlite3.Connection | None:
        path = self.path()
        want = (os.getpid(), str(path))
        if self._conn is not None and self._conn_key == want:
            return self._conn
        if self._conn is not None and self._conn_key[0] == want[0]:
            self._close()
        self._conn = None  # a connection inherited through fork is abandoned, never used or closed
        for attempt in (1, 2):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(path), timeout=TIMEOUT_S, isolation_level=None, check_same_thread=False)
            except (sqlite3.Error, OSError):
                _count(self.namespace, "errors")
                return None
            try:
                try:
                    conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
                except sqlite3.OperationalError:
                    pass  # locked right now, or a file system without shared memory: the default journal
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent on a crash; a few commits may go
                conn.execute(_CREATE)
                conn.execute("SELECT count(*) FROM (SELECT 1 FROM entries LIMIT 1)").fetchone()
            except sqlite3.Error as exc:
                conn.close()
                if attempt == 1 and _is_corruption(exc):
                    self._discard(path)
                    continue
                _count(self.namespace, "errors")
                return None
            self._conn, self._conn_key = conn, want
            return conn
        return None

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn, self._conn_key = None, None

    def _discard(self, path: Path) -> None:
        """Delete a file SQLite cannot read (and its journal files): it is rebuilt from scratch."""
        self._close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                Path(str(path) + suffix).unlink(missing_ok=True)
            except OSError:
                pass
        _count(self.namespace, "rebuilt")

    def _failed(self, exc: BaseException) -> None:
        _count(self.namespace, "errors")
        if _is_corruption(exc):
            self._discard(self.path())

    # ------------------------------------------------------------------ reads and writes

    def get_many(self, texts: Iterable[str]) -> dict[str, Any]:
        """The stored values of ``texts`` that can be read (a missing, unreadable or damaged row is left out)."""
        texts = [t for t in dict.fromkeys(texts) if _storable(t)]
        if not texts or not enabled():
            return {}
        ident = self.ident()
        if ident is None:
            return {}
        keys = {self.key(ident, t): t for t in texts}
        found: dict[str, Any] = {}
        damaged: list[bytes] = []
        with self._lock:
            conn = self._connection()
            if conn is None:
                return {}
            try:
                items = list(keys)
                for start in range(0, len(items), _CHUNK):
                    chunk = items[start : start + _CHUNK]
                    rows = conn.execute(f"SELECT key, text, value, crc FROM entries WHERE key IN "
                                        f"({','.join('?' * len(chunk))})", chunk).fetchall()
                    for key, text, value, crc in rows:
                        want = keys.get(bytes(key))
                        value = bytes(value)
                        try:
                            if want is None or text != want or _crc(text, value) != crc:
                                raise ValueError("damaged row")
                            found[want] = self.codec.decode(value)
                        except (ValueError, TypeError, UnicodeDecodeError):
                            damaged.append(bytes(key))
            except sqlite3.Error as exc:
                self._failed(exc)
                return {}
        _count(self.namespace, "disk_hits", len(found))
        _count(self.namespace, "disk_misses", len(texts) - len(found))
        _count(self.namespace, "damaged", len(damaged))
        return found

    def put_many(self, values: Mapping[str, Any]) -> None:
        """Store values (one transaction); a value the codec refuses is skipped, a failed write dropped."""
        if not values or not enabled():
            return
        ident = self.ident()
        if ident is None:
            return
        rows = []
        for text, value in values.items():
            if not _storable(text):
                continue
            try:
                blob = self.codec.encode(value)
            except (ValueError, TypeError):
                _count(self.namespace, "errors")
                continue
            rows.append((self.key(ident, text), ident, text, blob, _crc(text, blob)))
        if not rows:
            return
        with self._lock:
            conn = self._connection()
            if conn is None:
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany("INSERT OR REPLACE INTO entries (key, ident, text, value, crc) "
                                     "VALUES (?, ?, ?, ?, ?)", rows)
                    conn.execute("COMMIT")
                except BaseException:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise
            except sqlite3.Error as exc:
                self._failed(exc)
                return
        _count(self.namespace, "written", len(rows))

    def load_all(self) -> dict[str, Any]:
        """Every readable value of the current identity (for small namespaces, read once per process)."""
        if not enabled():
            return {}
        ident = self.ident()
        if ident is None:
            return {}
        found: dict[str, Any] = {}
        with self._lock:
            conn = self._connection()
            if conn is None:
                return {}
            try:
                rows = conn.execute("SELECT key, text, value, crc FROM entries WHERE ident = ?", (ident,)).fetchall()
            except sqlite3.Error as exc:
                self._failed(exc)
                return {}
        for key, text, value, crc in rows:
            value = bytes(value)
            try:
                if bytes(key) != self.key(ident, text) or _crc(text, value) != crc:
                    raise ValueError("damaged row")
                found[text] = self.codec.decode(value)
            except (ValueError, TypeError, UnicodeDecodeError):
                _count(self.namespace, "damaged")
        _count(self.namespace, "disk_hits", len(found))
        return found

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn_key and self._conn_key[0] == os.getpid():
                self._close()
            self._conn, self._conn_key = None, None


_STORES: weakref.WeakSet[TextCache] = weakref.WeakSet()


def close_all() -> None:
    """Close every open cache file of this process (SQLite folds its WAL back into the file on the last close)."""
    for store in list(_STORES):
        store.close()


def cached_values(store: TextCache, texts: Sequence[str], compute: Callable[[list[str]], Sequence[Any]],
                  memory: dict[str, Any] | None = None) -> list[Any]:
    """The values of ``texts``: from ``memory``, else from disk, else ``compute(missing texts)`` (one call, in
    the order of first appearance), which are then stored on disk and in memory."""
    out: dict[str, Any] = {}
    if memory is not None:
        out.update((t, memory[t]) for t in texts if t in memory)
    todo = [t for t in dict.fromkeys(texts) if t not in out]
    if todo:
        out.update(store.get_many(todo))
        missing = [t for t in todo if t not in out]
        if missing:
            values = list(compute(missing))
            if len(values) != len(missing):
                raise ValueError(f"compute returned {len(values)} values for {len(missing)} texts")
            fresh = dict(zip(missing, values, strict=True))
            count_computed(store.namespace, len(fresh))
            store.put_many(fresh)
            out.update(fresh)
        if memory is not None:
            memory.update((t, out[t]) for t in todo)
    return [out[t] for t in texts]
