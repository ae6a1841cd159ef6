"""The Dagster layer: the resource, the daily-partitioned assets, their checks, schedules and definitions.

It builds on `cratedb_export.core` and adds only what Dagster needs: keys and names, events and metadata,
per-day check evaluations, and the schedules.
"""
