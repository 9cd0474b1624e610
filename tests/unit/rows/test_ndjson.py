from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime

from airflow_revcent.rows.ndjson import NdjsonWriter, metadata_suffix, sweep_stale_dirs

SUFFIX = metadata_suffix(extracted_at=datetime(2026, 11, 2, 1, 2, 3, tzinfo=UTC),
                         interval_start=1761955200, interval_end=1762041600, run_id="scheduled__2026-11-01")


def test_rows_get_metadata_and_a_content_hash_of_their_canonical_text(tmp_path):
    with NdjsonWriter(SUFFIX, directory=str(tmp_path)) as writer:
        writer.write({"id": "b", "created_date_unix": 1761955200, "name": "Zoë", "n": 0.1})
        files = writer.flush()
        lines = files[0].read_text(encoding="utf-8").splitlines()
        folder = writer.folder
    row = json.loads(lines[0])
    assert row["_created_at"] == "2025-11-01T00:00:00Z"
    assert row["_extracted_at"] == row["_first_seen_at"] == "2026-11-02T01:02:03.000000Z"
    assert row["_interval_start"] == "2025-11-01T00:00:00Z" and row["_interval_end"] == "2025-11-02T00:00:00Z"
    assert row["_run_id"] == "scheduled__2026-11-01"
    canonical = json.dumps({"created_date_unix": 1761955200, "id": "b", "n": 0.1, "name": "Zoë"},
                           ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert row["_content_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert "Zoë" in lines[0]  # UTF-8, not escaped
    assert not folder.exists()  # the temp folder is removed on close


def test_digest_is_independent_of_order_and_files_roll_over(tmp_path):
    rows = [{"id": str(i), "created_date_unix": i} for i in range(50)]
    with NdjsonWriter(SUFFIX, directory=str(tmp_path), max_file_bytes=2000) as a:
        a.write_many(rows)
        files = a.flush()
        assert len(files) > 1 and sum(len(f.read_bytes().splitlines()) for f in files) == 50
        assert all(f.stat().st_size <= 2000 for f in files)
    with NdjsonWriter(SUFFIX, directory=str(tmp_path)) as b:
        b.write_many(reversed(rows))
    assert a.digest == b.digest and a.rows == b.rows == 50
    with NdjsonWriter(SUFFIX, directory=str(tmp_path)) as c:
        c.write_many([*rows[:-1], {"id": "49", "created_date_unix": 48}])
    assert c.digest != a.digest


def test_sweep_removes_folders_of_dead_runs_only(tmp_path):
    dead = tmp_path / "airflow-revcent-dead"
    dead.mkdir()
    (dead / "owner.pid").write_text("999999999")
    live = tmp_path / "airflow-revcent-live"
    live.mkdir()
    (live / "owner.pid").write_text(str(os.getpid()))
    old = time.time() - 7200
    for path in (dead, live):
        os.utime(path, (old, old))
    assert sweep_stale_dirs(str(tmp_path)) == [str(dead)]
    assert live.exists() and not dead.exists()


def test_each_row_carries_the_read_time_of_its_page_and_keeps_it_through_a_rewrite(tmp_path):
    from decimal import Decimal

    from airflow_revcent.rows.ndjson import read_time_members

    page_1 = read_time_members(datetime(2026, 11, 2, 1, 2, 4, 500, tzinfo=UTC))
    with NdjsonWriter(SUFFIX, directory=str(tmp_path)) as writer:
        writer.write({"id": "a", "created_date_unix": 1, "n": Decimal("12345678901234567890.12")}, page_1)
        writer.write({"id": "b", "created_date_unix": 1})  # no read time: the suffix's
        writer.rewrite(lambda row: row)
        rows = [json.loads(line) for f in writer.flush() for line in f.read_text().splitlines()]
    assert rows[0]["_extracted_at"] == rows[0]["_first_seen_at"] == "2026-11-02T01:02:04.000500Z"
    assert rows[1]["_extracted_at"] == "2026-11-02T01:02:03.000000Z"
    assert rows[0]["n"] == "12345678901234567890.12"  # exact through the rewrite
    assert rows[0]["_run_id"] == "scheduled__2026-11-01"


def test_year_one_created_seconds_have_four_digit_years(tmp_path):
    with NdjsonWriter(SUFFIX, directory=str(tmp_path)) as writer:
        writer.write({"id": "a", "created_date_unix": -62135596800})
        row = json.loads(writer.flush()[0].read_text())
    assert row["_created_at"] == "0001-01-01T00:00:00Z"
