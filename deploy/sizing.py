"""Measure storage per picture for deploy/README.md ("Sizing"). Writes deploy/sizing.json.

* SQL: inserts N pictures with the stored embedding (the packaged reduction's 256-d float16, 512 bytes)
  through `ImageRepository.upsert` (the path an add takes: the images row, its change-log row, their
  indexes) into a fresh SQLite file and a fresh PostgreSQL database,
  and reports the bytes each grew by, per picture.
* Thumbnails (--thumbnails): the console's JPEG per picture (setting `thumbnails`, `thumbnail_size`), made
  the way an add makes it from the 22 real photos the tests ship (tests/photos.py), and the SQL bytes per
  row of the `thumbnails` table for copies of them in SQLite (and PostgreSQL with --postgres).
* Local features (--keypoints): what an add stores for the geometric check (setting `copy_verification`):
  the uploaded JPEG decoded, `stored_keypoints` of it, `keypoint_codec.encode`d, made from two sample sets:
  the 22 test photos and, where bench/picture_corpus.py finds its Debian picture packages, a few hundred of
  its wallpapers, stamps, icons and clip-art; and the SQL bytes per row of the `keypoints` table for rounds
  of each set in SQLite (and PostgreSQL with --postgres).
* Milvus (--milvus-rows, with a local milvus-server): inserts 256-d vectors through the backend itself
  (`MilvusBackend.open(...).upsert_records`: its collection schema with the nine scalar copies, its index
  type, one partition per instance) for each of --milvus-index (default IVF_SQ8, the backend's default),
  flushes, waits for the index, loads it, and reports the growth of the server's data directory and of its
  processes' RSS, per vector.

    .venv/bin/python deploy/sizing.py --rows 20000 \
        --postgres postgresql+psycopg://lookalike@127.0.0.1:54329/postgres \
        --milvus http://127.0.0.1:19530 --milvus-data /tmp/lookalike-test-servers/milvus \
        --milvus-rows 200000 --milvus-index IVF_SQ8,IVF_PQ,HNSW
    .venv/bin/python deploy/sizing.py --thumbnails --postgres postgresql+psycopg://lookalike@127.0.0.1:54329/postgres
    .venv/bin/python deploy/sizing.py --keypoints --postgres postgresql+psycopg://lookalike@127.0.0.1:54329/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from PIL import Image

from lookalike.clock import SystemClock
from lookalike.config import Settings
from lookalike.domain import keypoint_codec
from lookalike.domain.models import Attributes
from lookalike.service.container import build_control_plane
from lookalike.storage.db import make_engine, sqlite_url
from lookalike.storage.images_repo import ImageRepository, NewImage
from lookalike.storage.tables import keypoints, thumbnails
from lookalike.vectors.reduction import packaged
from lookalike.vision.decode import decode_image
from lookalike.vision.keypoints import STORED_FEATURES, STORED_SIDE, stored_keypoints
from lookalike.vision.thumbnail import make_thumbnail

DIM = packaged().dim_out
MODEL_ID = packaged().model_id()


def _picture(i: int, rng: np.random.Generator) -> NewImage:
    """A typical catalogue picture: short ids, two attributes, a region, a line of custom content, and (the
    larger case) both stored views: the subject crop's vector and the whole picture's."""
    vector = rng.standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    whole = rng.standard_normal(DIM).astype(np.float32)
    whole /= np.linalg.norm(whole)
    return NewImage(
        product_id=f"sku-{i // 4:08d}",
        pic_name=f"photo-{i:08d}.jpg",
        category_id=int(i % 20),
        attributes=Attributes(int_attr=int(i % 1000), str_attr=("red", "blue", "green")[i % 3]),
        custom_content=f'{{"title": "product {i // 4}", "price": {i % 997}}}',
        region=f"{i % 50},{300 + i % 50},{i % 40},{400 + i % 40}",
        embedding=vector,
        model_id=MODEL_ID,
        aux_embedding=whole,
    )


def _fill(settings: Settings, rows: int) -> tuple[sa.Engine, float]:
    control = build_control_plane(settings, SystemClock())
    account, _key = control.accounts.create_account("sizing")
    instance = control.billing.orders.grant(account.id, "sizing", capacity=rows + 1, qps=1)
    repo = ImageRepository(control.engine)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for i in range(rows):
        repo.upsert(instance.id, _picture(i, rng), capacity=rows + 1, now=datetime.now(UTC))
    return control.engine, time.perf_counter() - started


def measure_sqlite(rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db = data_dir / "lookalike.db"
        build_control_plane(Settings(data_dir=data_dir), SystemClock()).engine.dispose()
        empty = db.stat().st_size
        engine, seconds = _fill(Settings(data_dir=data_dir), rows)
        engine.dispose()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filled = db.stat().st_size
        return {
            "rows": rows,
            "insert_s": round(seconds, 1),
            "file_bytes_empty": empty,
            "file_bytes_filled": filled,
            "bytes_per_picture": round((filled - empty) / rows),
        }


def measure_postgres(admin_url: str, rows: int) -> dict[str, Any]:
    admin = sa.create_engine(sa.make_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"lookalike_sizing_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        version = conn.execute(sa.text("SHOW server_version")).scalar()
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), database_url=url)
            build_control_plane(settings, SystemClock()).engine.dispose()
            size_sql = sa.text("SELECT pg_database_size(current_database())")
            probe = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            with probe.connect() as conn:
                empty = int(conn.execute(size_sql).scalar_one())
            engine, seconds = _fill(settings, rows)
            engine.dispose()

            def relations(conn: sa.Connection) -> dict[str, int]:
                found: dict[str, int] = {}
                for table in ("images", "changes"):
                    found[table] = int(
                        conn.execute(sa.text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
                    )
                    found[f"{table}_toast"] = int(
                        conn.execute(
                            sa.text(
                                "SELECT coalesce(pg_total_relation_size(reltoastrelid), 0) FROM pg_class "
                                f"WHERE relname = '{table}'"
                            )
                        ).scalar_one()
                    )
                    found[f"{table}_indexes"] = int(
                        conn.execute(sa.text(f"SELECT pg_indexes_size('{table}')")).scalar_one()
                    )
                return found

            with probe.connect() as conn:
                filled = int(conn.execute(size_sql).scalar_one())
                after_insert = relations(conn)
                conn.execute(sa.text("VACUUM FULL ANALYZE"))
                compact = int(conn.execute(size_sql).scalar_one())
                after_vacuum = relations(conn)
            probe.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    per_row = {k: round(v / rows) for k, v in after_vacuum.items()}
    return {
        "server_version": version,
        "rows": rows,
        "insert_s": round(seconds, 1),
        "database_bytes_empty": empty,
        "database_bytes_after_insert": filled,
        "database_bytes_after_vacuum_full": compact,
        "bytes_per_picture_after_insert": round((filled - empty) / rows),
        "bytes_per_picture_after_vacuum_full": round((compact - empty) / rows),
        "relations_after_insert": after_insert,
        "relations_after_vacuum_full": after_vacuum,
        "relation_bytes_per_picture_after_vacuum_full": per_row,
    }


def thumbnail_samples(size: int) -> dict[str, bytes]:
    """Each shipped test photo, uploaded as a quality-92 JPEG, decoded and thumbnailed as add_image does."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from photos import PHOTO_NAMES, encode, load_photo

    return {name: make_thumbnail(decode_image(encode(load_photo(name))).image, size) for name in PHOTO_NAMES}


def _blob_table_bytes(
    engine: sa.Engine, table: sa.Table, samples: list[bytes], rows: int, measure: Any
) -> int:
    """Growth of the database (by `measure`) for `rows` rows of `table` (image_id, instance_id, data), the
    samples in turn."""
    before = measure()
    with engine.begin() as conn:
        values = [
            {"image_id": i, "instance_id": "sizing", "data": samples[i % len(samples)]} for i in range(rows)
        ]
        for start in range(0, len(values), 500):
            conn.execute(sa.insert(table), values[start : start + 500])
    return int(measure()) - int(before)


def _sqlite_growth(table: sa.Table, samples: list[bytes], rows: int) -> tuple[int, int]:
    """(bytes the SQLite file grows by for `rows` rows of `table`, after a WAL checkpoint; its page size),
    in a fresh embedded database."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db = data_dir / "lookalike.db"
        engine = build_control_plane(Settings(data_dir=data_dir), SystemClock()).engine

        def file_size() -> int:
            with sqlite3.connect(db) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return db.stat().st_size

        grown = _blob_table_bytes(engine, table, samples, rows, file_size)
        with sqlite3.connect(db) as conn:
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        engine.dispose()
    return grown, page_size


def _postgres_growth(admin_url: str, table: sa.Table, samples: list[bytes], rows: int) -> dict[str, Any]:
    """The same in a fresh PostgreSQL database (dropped afterwards): the database's growth, the table's total
    size, its TOAST and index parts, and the server version."""
    admin = sa.create_engine(sa.make_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"lookalike_sizing_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = build_control_plane(Settings(data_dir=Path(tmp), database_url=url), SystemClock()).engine

            def scalar(sql: str) -> Any:
                with engine.connect() as conn:
                    return conn.execute(sa.text(sql), {"t": table.name}).scalar_one()

            found = {
                "grown": _blob_table_bytes(
                    engine,
                    table,
                    samples,
                    rows,
                    lambda: int(scalar("SELECT pg_database_size(current_database())")),
                ),
                "version": str(scalar("SHOW server_version")),
                "table": int(scalar("SELECT pg_total_relation_size(CAST(:t AS regclass))")),
                "toast": int(
                    scalar(
                        "SELECT coalesce(pg_total_relation_size(reltoastrelid), 0) FROM pg_class "
                        "WHERE relname = :t"
                    )
                ),
                "indexes": int(scalar("SELECT pg_indexes_size(CAST(:t AS regclass))")),
            }
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return found


def measure_thumbnails(size: int, copies: int, admin_url: str | None) -> dict[str, Any]:
    made = thumbnail_samples(size)
    samples = list(made.values())
    sizes = sorted(len(b) for b in samples)
    rows = copies * len(samples)
    report: dict[str, Any] = {
        "photos": len(samples),
        "thumbnail_size": size,
        "jpeg_bytes": {name: len(data) for name, data in made.items()},
        "jpeg_bytes_mean": round(statistics.mean(sizes)),
        "jpeg_bytes_median": round(statistics.median(sizes)),
        "jpeg_bytes_min": sizes[0],
        "jpeg_bytes_max": sizes[-1],
    }
    grown, _ = _sqlite_growth(thumbnails, samples, rows)
    report["sqlite"] = {"rows": rows, "bytes_per_thumbnail": round(grown / rows)}
    if admin_url:
        pg = _postgres_growth(admin_url, thumbnails, samples, rows)
        report["postgresql"] = {
            "rows": rows,
            "bytes_per_thumbnail": round(pg["grown"] / rows),
            "table_bytes_per_thumbnail": round(pg["table"] / rows),
        }
    return report


def _stored_features(image: Image.Image) -> bytes:
    """What add_image stores for a picture uploaded as a quality-92 JPEG (tests/photos.encode)."""
    from photos import encode

    return keypoint_codec.encode(stored_keypoints(decode_image(encode(image)).image))


def keypoint_samples(corpus_pictures: int) -> dict[str, dict[str, bytes]]:
    """The stored features of each sample set: the 22 shipped test photos, and up to `corpus_pictures` of
    bench/picture_corpus.py's (a seeded sample of its first 200 sources and 1,000 distractors: wallpapers,
    stamps, icons, clip-art; the test photos left out) where its Debian picture packages are installed."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "tests"))
    from photos import PHOTO_NAMES, load_photo

    sets = {"test_photos": {name: _stored_features(load_photo(name)) for name in PHOTO_NAMES}}
    if corpus_pictures > 0:
        sys.path.insert(0, str(root / "bench"))
        import picture_corpus

        corpus = picture_corpus.load(sources=200, distractors=1000)
        pictures = [(n, im) for n, im in corpus.sources + corpus.distractors if not n.startswith("skimage:")]
        chosen = random.Random(0).sample(pictures, min(corpus_pictures, len(pictures)))
        if chosen:
            sets["picture_corpus"] = {name: _stored_features(image) for name, image in chosen}
    return sets


def _keypoint_sample_stats(made: dict[str, bytes]) -> dict[str, Any]:
    sizes = sorted(len(b) for b in made.values())
    counts = [len(keypoint_codec.decode(b)) for b in made.values()]
    kinds: dict[str, list[int]] = {}
    for name, data in made.items():
        kinds.setdefault(name.split(":")[0] if ":" in name else "photo", []).append(len(data))
    return {
        "pictures": len(sizes),
        "encoded_bytes_mean": round(statistics.mean(sizes)),
        "encoded_bytes_median": round(statistics.median(sizes)),
        "encoded_bytes_min": sizes[0],
        "encoded_bytes_max": sizes[-1],
        "features_mean": round(statistics.mean(counts), 1),
        "features_min": min(counts),
        "pictures_with_all_features": sum(1 for c in counts if c == STORED_FEATURES),
        "by_kind": {
            kind: {"pictures": len(v), "encoded_bytes_mean": round(statistics.mean(v))}
            for kind, v in sorted(kinds.items())
        },
    }


def _keypoint_sql(samples: list[bytes], rows: int, admin_url: str | None) -> dict[str, Any]:
    """Growth per row of the keypoints table: SQLite file (after a WAL checkpoint), and PostgreSQL database
    and table (heap, TOAST and indexes) with `admin_url`."""
    found: dict[str, Any] = {}
    grown, page_size = _sqlite_growth(keypoints, samples, rows)
    found["sqlite"] = {"rows": rows, "page_size": page_size, "bytes_per_picture": round(grown / rows)}
    if admin_url:
        pg = _postgres_growth(admin_url, keypoints, samples, rows)
        found["postgresql"] = {
            "server_version": pg["version"],
            "rows": rows,
            "bytes_per_picture": round(pg["grown"] / rows),
            "table_bytes_per_picture": round(pg["table"] / rows),
            "toast_bytes_per_picture": round(pg["toast"] / rows),
            "index_bytes_per_picture": round(pg["indexes"] / rows),
        }
    return found


def measure_keypoints(rows: int, corpus_pictures: int, admin_url: str | None) -> dict[str, Any]:
    """Each sample set's stored features, and the SQL bytes of whole rounds of it (at least `rows` rows)."""
    report: dict[str, Any] = {
        "stored_features": STORED_FEATURES,
        "stored_side_px": STORED_SIDE,
        "encoding": "keypoint_codec.encode: 4 bytes header + 36 bytes per feature (position 4 + ORB 32)",
        "uploaded_as": "JPEG quality 92 (tests/photos.encode), decoded by decode_image as an add does",
        "samples": "test_photos: the 22 of tests/photos.py; picture_corpus: random.Random(0).sample of "
        "bench/picture_corpus.load(sources=200, distractors=1000) without its skimage photos (pictures "
        "at most 800 px, near-duplicates and blank ones dropped)",
        "sets": {},
    }
    for set_name, made in keypoint_samples(corpus_pictures).items():
        samples = list(made.values())
        report["sets"][set_name] = {
            **_keypoint_sample_stats(made),
            **_keypoint_sql(samples, -(-rows // len(samples)) * len(samples), admin_url),
        }
    return report


def _tree_rss_bytes(root_pid: int) -> int:
    """RSS of a process and all its descendants (milvus-server runs the real server as a child)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(status.parent.name))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _du(path: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for child in sorted(path.iterdir()):
        files = [child] if child.is_file() else [f for f in child.rglob("*") if f.is_file()]
        sizes[child.name] = sum(f.stat().st_size for f in files if not f.is_symlink())
    return sizes


def _milvus_vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    vectors = centres[rng.integers(0, len(centres), n)] + 0.8 / np.sqrt(DIM) * rng.standard_normal((n, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def measure_milvus(uri: str, data_dir: Path, rows: int, index_type: str) -> dict[str, Any]:
    """Vectors through the backend's own adapter; other tenants of the same server add noise to the RSS."""
    from lookalike.storage.db import migrate
    from lookalike.vectors.milvus import MilvusBackend

    pid = int((data_dir / "pid").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(sqlite_url(Path(tmp)))
        migrate(engine)  # the backend's seq store lives in SQL
        prefix = f"lookalike_sizing_{uuid.uuid4().hex[:8]}_"
        backend = MilvusBackend(uri, engine=engine, collection_prefix=prefix, index_type=index_type)
        client = backend.client
        disk_before, rss_before = _du(data_dir / "data"), _tree_rss_bytes(pid)
        index = backend.open("sizing-instance", DIM)
        name = backend.collection_name(DIM)
        try:
            rng = np.random.default_rng(0)
            centres = rng.standard_normal((1000, DIM)).astype(np.float32)
            started = time.perf_counter()
            batch = 5000
            vectors = centres[:1]
            for start in range(0, rows, batch):
                n = min(batch, rows - start)
                vectors = _milvus_vectors(rng, centres, n)
                scalars = [
                    {
                        "category_id": (start + i) % 20,
                        "int_attr": (start + i) % 1000,
                        "int_attr2": 0,
                        "int_attr3": 0,
                        "int_attr4": 0,
                        "str_attr": ("red", "blue", "green")[(start + i) % 3],
                        "str_attr2": "",
                        "str_attr3": "",
                        "str_attr4": "",
                    }
                    for i in range(n)
                ]
                index.upsert_records(np.arange(start + 1, start + n + 1), vectors, scalars)
            client.flush(name)
            insert_s = time.perf_counter() - started
            while True:  # wait until every row is indexed
                info = client.describe_index(name, "vector")
                if int(info.get("indexed_rows", 0)) >= rows and int(info.get("pending_index_rows", 0)) == 0:
                    break
                time.sleep(2)
            index_s = time.perf_counter() - started - insert_s
            client.release_collection(name)
            client.load_collection(name)
            index.search(vectors[0], 10)
            time.sleep(10)  # let the segment handoff settle
            disk_after, rss_after = _du(data_dir / "data"), _tree_rss_bytes(pid)
        finally:
            client.drop_collection(name)
            backend.close()
            engine.dispose()
    grown = {k: disk_after.get(k, 0) - disk_before.get(k, 0) for k in disk_after}
    return {
        "server": "milvus-server (PyPI `milvus`), standalone, local storage, shared with other tests",
        "index_type": index_type,
        "index_params": {"nlist": backend.nlist, "nprobe": backend.nprobe, "hnsw_m": backend.hnsw_m},
        "dim": DIM,
        "rows": rows,
        "insert_and_flush_s": round(insert_s, 1),
        "index_build_s": round(index_s, 1),
        "data_dir_growth_bytes": grown,
        "disk_bytes_per_vector": round(sum(grown.values()) / rows),
        "disk_bytes_per_vector_without_rocksmq": round(
            sum(v for k, v in grown.items() if not k.startswith("rocksmq")) / rows
        ),
        "rss_bytes_before": rss_before,
        "rss_bytes_loaded": rss_after,
        "rss_bytes_per_vector": round((rss_after - rss_before) / rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--postgres", default=os.environ.get("LOOKALIKE_TEST_POSTGRES_URL"))
    parser.add_argument("--milvus", default=None, help="URI of a local milvus-server to measure")
    parser.add_argument("--milvus-data", type=Path, default=Path("/tmp/lookalike-test-servers/milvus"))
    parser.add_argument("--milvus-rows", type=int, default=200_000)
    parser.add_argument("--milvus-index", default="IVF_SQ8", help="comma-separated index types to measure")
    parser.add_argument("--skip-sql", action="store_true", help="measure Milvus only (keeps the SQL figures)")
    parser.add_argument(
        "--thumbnails", action="store_true", help="measure thumbnails only (keeps the other figures)"
    )
    parser.add_argument("--thumbnail-size", type=int, default=Settings().thumbnail_size)
    parser.add_argument("--thumbnail-copies", type=int, default=100, help="rounds of the 22 photos in SQL")
    parser.add_argument(
        "--keypoints",
        action="store_true",
        help="measure stored local features only (keeps the other figures)",
    )
    parser.add_argument(
        "--keypoint-rows", type=int, default=4400, help="SQL rows per sample set (whole rounds)"
    )
    parser.add_argument(
        "--keypoint-corpus", type=int, default=400, help="pictures of bench/picture_corpus.py (0: none)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("sizing.json"))
    args = parser.parse_args()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.thumbnails:  # its own section, with its own commit: the other figures stay as measured
        thumbs = measure_thumbnails(args.thumbnail_size, args.thumbnail_copies, args.postgres)
        report["thumbnails"] = {"git_head": head, **thumbs}
        print(json.dumps(report["thumbnails"], indent=1))
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        return
    if args.keypoints:  # likewise its own section
        features = measure_keypoints(args.keypoint_rows, args.keypoint_corpus, args.postgres)
        report["keypoints"] = {"git_head": head, **features}
        print(json.dumps(report["keypoints"], indent=1))
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        return
    report.update(
        {
            "what": "storage per picture: SQL via ImageRepository.upsert (images + change-log row)",
            "picture": f"two {DIM}-d float16 vectors ({DIM * 2:,} bytes each: subject crop and whole "
            f"picture, model {MODEL_ID}), short ids, 2 attributes, region, 40-char custom, its words "
            "in the full-text index",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "git_head": head,
        }
    )
    if not args.skip_sql:
        report["sqlite"] = measure_sqlite(args.rows)
        print(json.dumps(report["sqlite"], indent=1))
        if args.postgres:
            report["postgresql"] = measure_postgres(args.postgres, args.rows)
            print(json.dumps(report["postgresql"], indent=1))
    if args.milvus:
        report["milvus"] = {"git_head": head, "runs": []}
        for index_type in args.milvus_index.split(","):
            run = measure_milvus(args.milvus, args.milvus_data, args.milvus_rows, index_type.strip())
            report["milvus"]["runs"].append(run)
            print(json.dumps(run, indent=1))
            args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
