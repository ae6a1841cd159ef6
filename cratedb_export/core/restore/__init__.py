"""The way back: restoring archived days into CrateDB, verified row for row.

archive.py proves what S3 holds for a day (its `_SUCCESS`, its manifest, the files the manifest lists
with their sizes); day.py plans a day's restore — the target table's columns, the rows of the day already
there — before anything is written, then loads the files with `COPY FROM ... RETURN SUMMARY` and recounts.
CrateDB answers a COPY FROM with success even when every row failed (crate/crate#19574): only the summary
and a recount after a refresh are trusted.
"""
