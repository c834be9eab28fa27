"""The one checkpoint format: atomic, keyed, named states in a directory.

A :class:`Checkpoint` holds one file per *name* (a phase, a sub-simulation, a frame). Every
file records the *key* it was written for: a :func:`twistox.core.hashing.settings_hash` of
everything the state depends on (inputs, settings, model files). A file written for another
key is ignored on load (and overwritten on save), so a stale checkpoint never leaks into a
new run. Writes go to a temporary sibling and are renamed into place (``os.replace``), so a
job killed mid-write leaves the previous checkpoint intact.

Formats (one per instance):

- ``"npz"`` (default): arrays (NumPy, or torch tensors moved to the CPU) as ``.npz`` entries;
  every other value (numbers, strings, lists, dicts) JSON-encoded. Loaded with
  ``allow_pickle=False``.
- ``"pt"``: ``torch.save`` of a dict of tensors / plain Python values, loaded with
  ``torch.load(weights_only=True)`` (no pickled code runs) onto ``map_location``.

Whole ``xarray.Dataset`` results (finished sub-simulations) use :meth:`Checkpoint.dataset`:
a Zarr store per name, key in its attrs, computed on a miss. On a miss too, the caller gets the
dataset read back from the store, so a resumed run (sub-results read from disk) and an
uninterrupted one (sub-results just computed) post-process the very same arrays (dtype, attrs,
memory layout) and give bit-identical artifacts.

``TWISTOX_CHECKPOINT_INTERVAL_S`` (environment), when set, overrides every ``interval_s``: a
preemptible node can checkpoint more often without a config change, and the kill-and-resume
tests (tests/test_resume.py) get a checkpoint within seconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger("twistox")

FORMATS = ("npz", "pt")
INTERVAL_ENV = "TWISTOX_CHECKPOINT_INTERVAL_S"
DEFAULT_INTERVAL_S = 60.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path`` (same suffix, so writers that
    infer the format from it still work)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def checkpoint_interval(interval_s: float | None = None) -> float:
    """Seconds between periodic saves: ``$TWISTOX_CHECKPOINT_INTERVAL_S`` when set, else
    ``interval_s``, else 60 s."""
    env = os.environ.get(INTERVAL_ENV, "").strip()
    if env:
        try:
            value = float(env)
        except ValueError:
            value = float("nan")
        if not value >= 0:  # also refuses NaN
            raise ValueError(f"environment variable {INTERVAL_ENV}={env!r}: allowed: a number of seconds >= 0")
        return value
    return DEFAULT_INTERVAL_S if interval_s is None else float(interval_s)


def _is_tensor(v: Any) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "detach")


class Checkpoint:
    """Atomic, keyed checkpoints of named states in one directory.

    ``directory=None`` disables checkpointing (``load`` returns None, ``save`` does nothing).
    ``interval_s``: :meth:`due` is true once this many seconds passed since the last save, for
    loops that save periodically (None: 60 s; ``$TWISTOX_CHECKPOINT_INTERVAL_S`` overrides both).
    ``key`` may be overridden per call (sub-simulations with their own settings).
    """

    def __init__(self, directory: str | os.PathLike | None, key: str = "", interval_s: float | None = None,
                 fmt: str = "npz", map_location: str | None = "cpu"):
        if fmt not in FORMATS:
            raise ValueError(f"checkpoint format: {fmt!r} is not allowed; allowed: {', '.join(FORMATS)}")
        self.dir = Path(directory) if directory else None
        self.key = str(key)
        self.interval_s = checkpoint_interval(interval_s)
        self.fmt = fmt
        self.map_location = map_location
        self._last = time.monotonic()

    # -- files ------------------------------------------------------------------------------
    def path(self, name: str) -> Path | None:
        """File of ``name`` (None when disabled)."""
        if not _NAME_RE.match(name):
            raise ValueError(f"checkpoint name {name!r}: use letters, digits and _ . + - only")
        return None if self.dir is None else self.dir / f"{name}.{self.fmt}"

    def exists(self, name: str, key: str | None = None) -> bool:
        """A checkpoint of ``name`` written for this key exists."""
        return self.load(name, key) is not None

    def due(self) -> bool:
        """True when enabled and ``interval_s`` passed since the last save."""
        return self.dir is not None and time.monotonic() - self._last >= self.interval_s

    def clear(self) -> None:
        """Remove the directory, and its parent if that is left empty (e.g. ``.checkpoints/``): the run's
        outputs are complete, so the checkpoints are spent."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            try:
                self.dir.parent.rmdir()  # only succeeds when empty
            except OSError:
                pass

    # -- state dicts ------------------------------------------------------------------------
    def save(self, name: str, key: str | None = None, **state: Any) -> None:
        """Write ``state`` (arrays, tensors, JSON-able values) for ``name`` atomically."""
        path = self.path(name)
        if path is None:
            return
        key = self.key if key is None else str(key)
        if self.fmt == "npz":
            arrays, meta = {}, {}
            for k, v in state.items():
                if k.startswith("_"):
                    raise ValueError(f"checkpoint entry {k!r}: names starting with '_' are reserved")
                if isinstance(v, np.ndarray):
                    arrays[k] = v
                elif _is_tensor(v):
                    arrays[k] = v.detach().cpu().numpy()
                else:
                    meta[k] = v
            payload = dict(_key=np.array(key), _name=np.array(name), _meta=np.array(json.dumps(meta)), **arrays)
            atomic_write(path, lambda tmp: np.savez(tmp, **payload))
        else:
            import torch

            payload = {"_key": key, "_name": name,
                       **{k: (v.detach().cpu() if _is_tensor(v) else v) for k, v in state.items()}}
            atomic_write(path, lambda tmp: torch.save(payload, tmp))
        self._last = time.monotonic()

    def load(self, name: str, key: str | None = None) -> dict | None:
        """The state saved for ``name`` under this key, or None (absent, other key, unreadable)."""
        path = self.path(name)
        if path is None or not path.exists():
            return None
        key = self.key if key is None else str(key)
        try:
            if self.fmt == "npz":
                with np.load(path, allow_pickle=False) as z:
                    if str(z["_key"]) != key or str(z["_name"]) != name:
                        return None
                    out = {k: z[k] for k in z.files if not k.startswith("_")}
                    out.update(json.loads(str(z["_meta"])))
                    return out
            import torch

            state = torch.load(path, map_location=self.map_location, weights_only=True)
            if state.get("_key") != key or state.get("_name") != name:
                return None
            return {k: v for k, v in state.items() if not k.startswith("_")}
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint means "start over", never a crash
            log.warning("checkpoint %s unreadable (%s: %s); ignoring it", path, type(exc).__name__, exc)
            return None

    # -- finished datasets ------------------------------------------------------------------
    def dataset(self, name: str, compute: Callable[[], Any], key: str | None = None):
        """The ``xarray.Dataset`` stored for ``name`` under this key, else ``compute()`` stored as Zarr.

        Either way the result is the dataset *read back from the store*, with the attrs that
        ``compute()`` gave (checkpoint key and provenance dropped): a hit and a miss hand the caller
        identical data, so resuming cannot change the last bits of what is derived from it."""
        from twistox.core.io import read_dataset, write_dataset

        key = self.key if key is None else str(key)
        if not _NAME_RE.match(name):
            raise ValueError(f"checkpoint name {name!r}: use letters, digits and _ . + - only")
        if self.dir is None:
            return compute()
        path = self.dir / f"{name}.zarr"
        if path.exists():
            try:
                ds = read_dataset(path)
                if ds.attrs.get("checkpoint_key") == key:
                    log.info("checkpoint hit: %s", path.name)
                    return _own_attrs(ds)
            except Exception as exc:  # noqa: BLE001
                log.warning("checkpoint %s unreadable (%s); recomputing", path, exc)
        ds = compute()
        ds = ds.assign_attrs(checkpoint_key=key, checkpoint_attrs=list(ds.attrs))
        write_dataset(ds, path, stage="checkpoint")
        self._last = time.monotonic()
        return _own_attrs(read_dataset(path))


def _own_attrs(ds):
    """``ds`` with only the attrs its ``compute()`` gave (stores without the list: all but the key)."""
    own = ds.attrs.get("checkpoint_attrs")
    ds.attrs = {k: v for k, v in ds.attrs.items()
                if k not in ("checkpoint_key", "checkpoint_attrs") and (own is None or k in own)}
    return ds
