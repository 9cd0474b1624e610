"""Rows to newline-delimited JSON files on local disk, as they arrive: memory stays flat.

Each row is serialised once, canonically (:func:`airflow_revcent.rows.jsontext.dumps`: sorted keys, no
spaces, decimals exact); the SHA-256 of that text is the row's ``_content_hash``, and the metadata
columns are spliced onto the same text, so a row costs one serialisation. Each row carries the time
its page was received (``_extracted_at``): overlapping runs are ordered by when each customer was
read, not by when the run started. Files roll over at ``max_file_bytes`` (each becomes one load job).

The writer also keeps an order-independent digest of the rows (their hashes summed modulo
2**256): pages arrive in any order, and the digest names the content whatever the order.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from airflow_revcent.exceptions import RevCentDiskSpaceError
from airflow_revcent.rows import jsontext
from airflow_revcent.rows.columns import METADATA_COLUMNS, UNKNOWN_FIELDS_COLUMN
from airflow_revcent.rows.timefmt import timestamp_text, unix_text

#: Files roll over at 64 MiB: the BigQuery client uploads a file in chunks of up to 100 MB held in
#: memory, so a smaller file keeps the task's memory flat however many customers a run loads.
DEFAULT_MAX_FILE_BYTES = 64 << 20
TEMP_PREFIX = "airflow-revcent-"
_MOD = 1 << 256
#: The columns spliced onto each row here (everything the pipeline adds but _unknown_fields).
_METADATA = tuple(c.name for c in METADATA_COLUMNS if c.name != UNKNOWN_FIELDS_COLUMN)
#: The members set per row from the time its page was received.
_READ_TIME_MEMBERS = ("_extracted_at", "_first_seen_at", "_last_changed_at")


def canonical_json(row: dict[str, Any]) -> bytes:
    """The row's canonical text: sorted keys, no spaces, UTF-8, decimals as their exact plain text,
    floats in shortest form (see :func:`airflow_revcent.rows.jsontext.dumps`).

    :param row: the row (the API part).
    """
    return jsontext.dumps(row)


def read_time_members(at: datetime) -> bytes:
    """The per-row members for a page received at ``at`` (spliced onto each of its rows).

    :param at: when the page was received.
    """
    text = timestamp_text(at)
    return "".join(f',"{name}":"{text}"' for name in _READ_TIME_MEMBERS).encode()


def metadata_suffix(*, extracted_at: datetime, interval_start: int, interval_end: int, run_id: str | None) -> str:
    """The JSON members shared by every row of one run (spliced onto each row's text).

    :param extracted_at: the read time of rows written without one (see :meth:`NdjsonWriter.write`).
    :param interval_start: first second of the run's interval.
    :param interval_end: first second after it.
    :param run_id: the Airflow run id.
    """
    members = {
        "_interval_start": unix_text(interval_start),
        "_interval_end": unix_text(interval_end),
        "_run_id": run_id,
    }
    return read_time_members(extracted_at).decode() + "," + json.dumps(
        members, ensure_ascii=False, separators=(",", ":"))[1:-1]


#: Bytes one customer takes in the files before any is written (measured on the sandbox's customers:
#: about 3.1 kB of API JSON plus the pipeline's columns); later estimates use what was really written.
BYTES_PER_CUSTOMER_GUESS = 3600
#: Free space the run leaves on the worker's disk beyond its own files.
DISK_HEADROOM = 1.2


def estimate_open_bytes(totals: Mapping[int, int], rows: Mapping[int, int], *, per_item: float) -> int:
    """Bytes the windows in flight will still write: each open window's ``total_count`` less the rows it
    has written. Windows not opened yet are checked when they open; staged windows' files are gone.

    :param totals: open window index -> the API's ``total_count`` for it.
    :param rows: open window index -> rows written for it so far.
    :param per_item: bytes one item takes in the files.
    """
    return int(sum(max(0, total - rows.get(index, 0)) for index, total in totals.items()) * per_item)


def bytes_per_item(rows: int, written: int) -> float:
    """Bytes one item takes in the files: measured once at least 100 were written, else the guess.

    :param rows: items written so far.
    :param written: bytes written so far.
    """
    return written / rows if rows >= 100 else float(BYTES_PER_CUSTOMER_GUESS)


def check_disk(directory: str | Path, *, needed: int, written: int) -> None:
    """Fail before the disk fills: the run still needs ``needed - written`` bytes (with headroom).

    :param directory: where the files go.
    :param needed: the estimated total bytes of the files in flight.
    :param written: bytes of them already written.
    """
    free = shutil.disk_usage(directory).free
    remaining = max(0, needed - written)
    if remaining * DISK_HEADROOM > free:
        raise RevCentDiskSpaceError(
            f"The run needs about {remaining * DISK_HEADROOM / 1e9:.2f} GB more in {directory} (estimated from the "
            f"API's total_count of the windows being read) but only {free / 1e9:.2f} GB are free. Give the operator a "
            "tmp_dir on a larger disk, or a smaller window_size (disk holds the windows in flight)."
        )


def sweep_stale_dirs(base: str | None = None, *, older_than: float = 3600.0) -> list[str]:
    """Remove temp folders left by killed runs on this machine (their owner process is gone).

    :param base: the temp folder to look in (default: the system's).
    :param older_than: only folders at least this old (seconds) are considered.
    """
    root = Path(base or tempfile.gettempdir())
    removed = []
    for path in root.glob(f"{TEMP_PREFIX}*"):
        try:
            pid = int((path / "owner.pid").read_text())
            if time.time() - path.stat().st_mtime < older_than or _alive(pid):
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class NdjsonWriter:
    """Writes rows to size-capped NDJSON files in a private temp folder, removed on close.

    :param suffix: metadata members from :func:`metadata_suffix`.
    :param max_file_bytes: roll over to a new file past this size.
    :param directory: where to create the temp folder (default: the system's temp folder).
    :param created_field: the row's creation time (unix seconds), which fills ``_created_at``.
    :param name: the files' name prefix (the resource's name).
    """

    def __init__(self, suffix: str, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, directory: str | None = None,
                 created_field: str = "created_date_unix", name: str = "customers"):
        self.created_field = created_field
        self.name = name
        # The suffix starts with the default read-time members; a row with its own read time replaces them.
        self._default_read = read_time_members(datetime(2000, 1, 1, tzinfo=UTC))
        encoded = suffix.encode()
        self._read_len = len(self._default_read) if encoded[: len(self._default_read)].startswith(
            b',"_extracted_at":"') else 0
        self._suffix = encoded + b"}\n"
        self.max_file_bytes = max_file_bytes
        self.folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=directory))
        (self.folder / "owner.pid").write_text(str(os.getpid()))
        self.files: list[Path] = []
        self.rows = 0
        self.bytes = 0
        self._digest = 0
        #: The earliest and latest ``created_date_unix`` written: the partitions the load touches.
        self.created_min: int | None = None
        self.created_max: int | None = None
        self._handle: IO[bytes] | None = None
        self._file_bytes = 0
        self._generation = 0

    def write(self, row: dict[str, Any], read_at: bytes | None = None) -> None:
        """Append one row (the API part; metadata is added here).

        :param row: the row.
        :param read_at: :func:`read_time_members` of when its page was received (default: the suffix's).
        """
        text = canonical_json(row)
        created = row[self.created_field]
        if self.created_min is None or created < self.created_min:
            self.created_min = created
        if self.created_max is None or created > self.created_max:
            self.created_max = created
        content_hash = hashlib.sha256(text).hexdigest()
        self._digest = (self._digest + int(content_hash, 16)) % _MOD
        line = b"".join((
            text[:-1],
            f',"_created_at":"{unix_text(created)}","_content_hash":"{content_hash}"'.encode(),
            self._suffix if read_at is None or not self._read_len else read_at + self._suffix[self._read_len:],
        ))
        if self._handle is None or (self._file_bytes + len(line) > self.max_file_bytes and self._file_bytes):
            self._roll()
        assert self._handle is not None
        self._handle.write(line)
        self._file_bytes += len(line)
        self.bytes += len(line)
        self.rows += 1

    def write_many(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def _roll(self) -> None:
        if self._handle is not None:
            self._handle.close()
        path = self.folder / f"{self.name}-{self._generation}-{len(self.files):05d}.ndjson"
        self._handle = path.open("wb", buffering=1 << 20)
        self.files.append(path)
        self._file_bytes = 0

    def rewrite(self, transform: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Pass every row written so far through ``transform`` (new hashes, new files): for the rare run
        that promotes fields to columns after reading them."""
        old = self.flush()
        self.files, self.rows, self.bytes, self._digest = [], 0, 0, 0
        self.created_min = self.created_max = None
        self._generation += 1
        for path in old:
            with path.open("rb") as lines:
                for line in lines:
                    row = jsontext.loads(line)
                    read_at = row.get("_extracted_at")
                    for name in _METADATA:
                        row.pop(name, None)
                    members = None
                    if isinstance(read_at, str):
                        members = "".join(f',"{n}":"{read_at}"' for n in _READ_TIME_MEMBERS).encode()
                    self.write(transform(row), members)
            path.unlink()

    def flush(self) -> list[Path]:
        """Close the current file; return every file written."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        return list(self.files)

    @property
    def digest(self) -> str:
        """An order-independent digest of every row written."""
        return f"{self._digest:064x}"

    def close(self) -> None:
        self.flush()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> NdjsonWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class WindowFiles:
    """One :class:`NdjsonWriter` per window in flight: opened on the window's first row, handed over once
    the window is read (:meth:`detach`: it waits for the staging worker) and closed, its files removed, once
    the window is staged (:meth:`release`), so local disk holds only the windows being read and the read
    windows waiting to be staged.

    The reader opens, writes and detaches; the staging worker releases. The counts that span both
    (:attr:`rows`, :attr:`bytes`, :attr:`bytes_on_disk`, :attr:`peak_bytes`) are kept under a lock.

    :param suffix: metadata members from :func:`metadata_suffix`.
    :param max_file_bytes: roll over to a new file past this size.
    :param directory: where the writers' temp folders go (default: the system's temp folder).
    :param created_field: the row's creation time (unix seconds), which fills ``_created_at``.
    :param name: the files' name prefix (the resource's name).
    """

    def __init__(self, suffix: str, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, directory: str | None = None,
                 created_field: str = "created_date_unix", name: str = "customers") -> None:
        self._new: Callable[[], NdjsonWriter] = functools.partial(
            NdjsonWriter, suffix, max_file_bytes=max_file_bytes, directory=directory, created_field=created_field,
            name=name)
        self.directory = Path(directory or tempfile.gettempdir())
        #: Windows being read, by index (the reader's alone).
        self.open: dict[int, NdjsonWriter] = {}
        #: Read windows not yet staged (a window read again may be here and in :attr:`open` at once).
        self.pending: list[NdjsonWriter] = []
        self._lock = threading.Lock()
        self._closed_rows = 0
        self._closed_bytes = 0
        #: The most bytes the windows' files held at once, waiting ones included (checked at every batch,
        #: at each hand-over and before staging).
        self.peak_bytes = 0
        #: The most windows being read at once.
        self.peak_windows = 0
        #: The most read windows waiting to be staged at once (the one being staged included).
        self.peak_pending = 0

    def writer(self, index: int) -> NdjsonWriter:
        """The writer of window ``index``, opened on first use."""
        writer = self.open.get(index)
        if writer is None:
            writer = self.open[index] = self._new()
            self.peak_windows = max(self.peak_windows, len(self.open))
        return writer

    @property
    def rows(self) -> int:
        """Rows written in all, windows staged included."""
        with self._lock:
            return self._closed_rows + sum(w.rows for w in (*self.open.values(), *self.pending))

    @property
    def bytes(self) -> int:
        """Bytes written in all, windows staged included (a rewritten window counts once)."""
        with self._lock:
            return self._closed_bytes + sum(w.bytes for w in (*self.open.values(), *self.pending))

    @property
    def bytes_on_disk(self) -> int:
        """Bytes the files of the windows being read and of those waiting to be staged hold now."""
        with self._lock:
            return self._on_disk()

    def _on_disk(self) -> int:
        return sum(w.bytes for w in (*self.open.values(), *self.pending))

    def note(self) -> None:
        """Record the bytes on disk now in :attr:`peak_bytes`."""
        with self._lock:
            self.peak_bytes = max(self.peak_bytes, self._on_disk())

    def detach(self, index: int) -> NdjsonWriter:
        """Hand window ``index``'s writer over to staging: it is no longer written, its files stay (and count)
        until :meth:`release`; the window read again gets a new writer."""
        writer = self.writer(index)
        with self._lock:
            del self.open[index]
            self.pending.append(writer)
            self.peak_pending = max(self.peak_pending, len(self.pending))
            self.peak_bytes = max(self.peak_bytes, self._on_disk())
        return writer

    def release(self, writer: NdjsonWriter) -> None:
        """Close a detached writer and remove its files (its window is staged)."""
        with self._lock:
            self.pending.remove(writer)
            self._closed_rows += writer.rows
            self._closed_bytes += writer.bytes
        writer.close()

    def close(self, index: int) -> None:
        """Close window ``index``'s writer and remove its files (the window is staged)."""
        if index in self.open:
            self.release(self.detach(index))

    def close_all(self) -> None:
        """Close every writer, read or waiting, and remove their files (the run ended or failed)."""
        with self._lock:
            writers = [*self.open.values(), *self.pending]
            self.open.clear()
            self.pending.clear()
        for writer in writers:
            writer.close()

    def __enter__(self) -> WindowFiles:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_all()
