"""The deployments file: a small repository (list/get/create/update/delete) shared by processes.

The CLI and a running server may both hold a store on the same file. Writes take a lock (a
thread lock in this process, an flock on a side file across processes), re-read the file, and
replace it atomically; reads re-load it whenever it changed on disk, so a deployment written by
one process is seen by the other on its next call. Each method maps to one SQL statement, so a
database repository can later take this class's place.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack

from ceruleum.deployments.errors import (
    DeploymentExistsError,
    DeploymentNotFoundError,
    DeploymentStoreCorruptError,
    InvalidDeploymentError,
)
from ceruleum.deployments.model import Deployment, SamplingDefaults

FILE_NAME = "deployments.json"
FORMAT_VERSION = 1

T = TypeVar("T")
# Inode, mtime and size: os.replace gives every write a new inode, so a rewrite of the same
# size within one mtime tick is still noticed.
_Stamp = tuple[int, int, int]
_Deployments = dict[str, Deployment]


class DeploymentChanges(TypedDict, total=False):
    """Fields ``DeploymentStore.update`` may change; the name is the key and never changes."""

    model: str
    defaults: SamplingDefaults
    max_tokens_limit: int | None


class DeploymentStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        # A side file, because the data file itself is replaced on every write.
        self._lock_path = path.with_name(path.name + ".lock")
        # Readers take only the cache lock, so a write (fsync, a wait on another process)
        # never holds up a read. Writers also take a process lock, because where flock is
        # emulated by fcntl locks (NFS) the threads of one process do not exclude each other.
        self._mutex = threading.Lock()
        self._write_lock = threading.Lock()
        self._cache: _Deployments = {}
        self._stamp: _Stamp | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> DeploymentStore:
        return cls(data_dir / FILE_NAME)

    @property
    def path(self) -> Path:
        return self._path

    def list(self) -> builtins.list[Deployment]:
        """All deployments, by name."""
        with self._mutex:
            return sorted(self._current().values(), key=lambda d: d.name)

    def get(self, name: str) -> Deployment:
        with self._mutex:
            found = self._current().get(name)
        if found is None:
            raise DeploymentNotFoundError(name)
        return found

    def create(self, deployment: Deployment) -> Deployment:
        def insert(deployments: _Deployments) -> Deployment:
            if deployment.name in deployments:
                raise DeploymentExistsError(deployment.name)
            deployments[deployment.name] = deployment
            return deployment

        return self._write(insert)

    def update(self, name: str, **changes: Unpack[DeploymentChanges]) -> Deployment:
        """The deployment with ``changes`` applied and ``updated_at`` set to now."""
        if not changes:
            return self.get(name)

        def replace(deployments: _Deployments) -> Deployment:
            current = deployments.get(name)
            if current is None:
                raise DeploymentNotFoundError(name)
            now = max(int(time.time()), current.created_at)
            updated = dataclasses.replace(current, **changes, updated_at=now)
            deployments[name] = updated
            return updated

        return self._write(replace)

    def delete(self, name: str) -> None:
        def remove(deployments: _Deployments) -> None:
            if deployments.pop(name, None) is None:
                raise DeploymentNotFoundError(name)

        self._write(remove)

    # --- reading -------------------------------------------------------------------------------

    def _current(self) -> _Deployments:
        """The cached deployments, re-loaded first if the file changed (call with ``_mutex``)."""
        try:
            stamp: _Stamp | None = _stamp_of(self._path.stat())
        except FileNotFoundError:
            stamp = None
        if stamp is None:
            self._cache, self._stamp = {}, None
        elif stamp != self._stamp:
            self._cache, self._stamp = self._read()
        return self._cache

    def _read(self) -> tuple[_Deployments, _Stamp | None]:
        try:
            with self._path.open("rb") as handle:
                # The stamp of the very file read, even if it is replaced meanwhile.
                stamp = _stamp_of(os.fstat(handle.fileno()))
                raw = handle.read()
        except FileNotFoundError:
            return {}, None
        except OSError as exc:
            raise DeploymentStoreCorruptError(self._path, f"cannot read it ({exc})") from exc
        return self._parse(raw), stamp

    def _parse(self, raw: bytes) -> _Deployments:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise DeploymentStoreCorruptError(self._path, f"not valid JSON ({exc})") from None
        if (
            not isinstance(data, dict)
            or data.get("version") != FORMAT_VERSION
            or not isinstance(data.get("deployments"), builtins.list)
        ):
            raise DeploymentStoreCorruptError(
                self._path,
                f'expected {{"version": {FORMAT_VERSION}, "deployments": [...]}} at the top',
            )
        deployments: _Deployments = {}
        for index, record in enumerate(data["deployments"]):
            try:
                deployment = _from_record(record)
            except (InvalidDeploymentError, KeyError, TypeError) as exc:
                reason = f"entry {index} is invalid ({type(exc).__name__}: {exc})"
                raise DeploymentStoreCorruptError(self._path, reason) from None
            if deployment.name in deployments:
                reason = f"two entries are named {deployment.name!r}"
                raise DeploymentStoreCorruptError(self._path, reason)
            deployments[deployment.name] = deployment
        return deployments

    # --- writing -------------------------------------------------------------------------------

    def _write(self, change: Callable[[_Deployments], T]) -> T:
        """Apply ``change`` to the file's current content and save it, under the write locks."""
        with self._write_lock, self._file_lock():
            # Always from disk: another process may have written since our last read.
            deployments, _ = self._read()
            result = change(deployments)
            self._save(deployments)
            stamp = _stamp_of(self._path.stat())
            with self._mutex:
                self._cache, self._stamp = deployments, stamp
            return result

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _save(self, deployments: _Deployments) -> None:
        """Write a temporary file beside the real one, then swap it in with one rename."""
        records = [_to_record(deployments[name]) for name in sorted(deployments)]
        payload = {"version": FORMAT_VERSION, "deployments": records}
        data = (json.dumps(payload, indent=2) + "\n").encode("utf-8")
        fd, temp = tempfile.mkstemp(dir=self._path.parent, prefix=f".{self._path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _stamp_of(stat: os.stat_result) -> _Stamp:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _to_record(deployment: Deployment) -> dict[str, Any]:
    return {
        "name": deployment.name,
        "model": deployment.model,
        "created_at": deployment.created_at,
        "updated_at": deployment.updated_at,
        "defaults": deployment.defaults.to_dict(),
        "max_tokens_limit": deployment.max_tokens_limit,
    }


def _from_record(record: object) -> Deployment:
    if not isinstance(record, dict):
        raise TypeError("not a JSON object")
    defaults = record.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise TypeError("'defaults' is not a JSON object")
    return Deployment(
        name=record["name"],
        model=record["model"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        defaults=SamplingDefaults(
            temperature=defaults.get("temperature"),
            top_p=defaults.get("top_p"),
            max_tokens=defaults.get("max_tokens"),
        ),
        max_tokens_limit=record.get("max_tokens_limit"),
    )
