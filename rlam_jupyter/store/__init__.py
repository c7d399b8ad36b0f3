"""The trace store: append-only journals, compacted Parquet, DuckDB views over both.

- ``journal`` writes one checksummed JSON line per record, one file per (run, writer);
  ``journal_reader`` reads journals into Arrow tables in bulk.
- ``compaction`` moves runs into per-run Parquet parts and publishes them through a
  ``manifest`` per run; readers skip the journal bytes a manifest covers.
- ``catalog.connect()`` is the read side: a lock-free snapshot as DuckDB views.
- ``parquet.export_parquet`` writes the tables for other tools; ``gc`` deletes
  unreferenced objects; ``versioning`` refuses stores from a newer release.
"""
