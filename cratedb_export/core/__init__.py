"""The export core: everything that makes a verified day in S3, without Dagster.

configuration (config, identifiers, target, window) → statement → CrateDB (cratedb, copy_jobs, cluster,
schema, source) and S3 (storage, lease) → a day's export and its verification (export, verification) →
formats → a run's fan-out over days (fanout). The Dagster layer (`cratedb_export.orchestration`) only turns
what this package reports into Dagster events; tests and benchmarks drive it directly.
"""

__version__ = "0.1.0"
