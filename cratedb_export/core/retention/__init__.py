"""Retention: delete a table's old days from CrateDB, only those the archive proves it holds, right then.

plan.py decides which days are due and how (a whole partition, or a day's window), from one grouped count
and one S3 listing; delete.py proves and deletes one unit while holding its days' leases; record.py is what
is written beside each deleted day in S3 (`_DELETED_FROM_CRATEDB.json`). docs/retention.md tells the rules.
"""
