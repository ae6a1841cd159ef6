"""A stand-in for CrateDB, used because no CrateDB server can run on this machine.

This is NOT CrateDB. It is a test double that speaks CrateDB's real HTTP protocol and follows
CrateDB's documented behaviour, and what real CrateDB 6.4.3 answered (docs/conformance.md), closely enough
that the exporter's tests pass against it *and* against a real CrateDB 5.x. It is only worth what it
refuses, so it is strict: every statement is first checked with CrateDB's own grammar
(``cratedb-sqlparse``), and a statement that parses but is not modelled here is answered with
``UnsupportedFeatureException[the CrateDB test double does not support ...]`` (code 4004), never
silently accepted.

What it covers:

* HTTP: ``GET /`` node info with ``version.number``; ``POST /_sql[?types][&error_trace]`` with
  ``args`` or ``bulk_args`` (gzip request bodies too), refused as CrateDB's ``SQLRequestParser``
  refuses them; CrateDB's reply and error JSON, output names as 6.4 gives them (``count``,
  ``date_trunc``, ``$1``, ``tags['host']``), ``col_types`` (integer literals and parameters are
  ``integer`` when they fit, ``date_trunc`` is ``timestamp with time zone``), codes and the HTTP
  statuses CrateDB's ``HttpErrorStatus`` gives them (five-digit codes included); grammar errors as
  ``ParsingException``; trust auth (user ``crate``) or HTTP Basic auth with a 401 plain-text refusal.
* Casts as CrateDB's types make them (numbers truncated, BooleanType's strings and numbers), with
  its two wordings: ``Cannot cast `'x'` of type `text` ...`` for literals, ``Cannot cast value `x`
  ...`` for parameters; VALUES type errors and column-count mismatches worded as CrateDB does.
* CREATE TABLE [IF NOT EXISTS] with BIGINT, INTEGER, TEXT, DOUBLE/REAL, BOOLEAN, TIMESTAMP WITH/WITHOUT
  TIME ZONE, OBJECT[(DYNAMIC)], ARRAY(...), generated ``date_trunc('<unit>', "ts")`` columns,
  ``CLUSTERED INTO n SHARDS``, ``PARTITIONED BY (col)``, ``WITH (column_policy, number_of_replicas,
  refresh_interval)``, ``PRIMARY KEY`` (column constraints and ``PRIMARY KEY (a, b)``, with CrateDB's
  refusals of object and array key columns and of a partition column outside the key); DROP TABLE
  [IF EXISTS]; REFRESH TABLE (no-op).
* INSERT ... VALUES with literals or parameters, bulk inserts. Primary keys as 6.4.3 enforces them
  (``DuplicateKeyException`` 4091, ``A primary key value must not be NULL``, a key column missing
  from the statement), in INSERTs, bulk inserts and COPY FROM (with ``overwrite_duplicates``).
  Tables are ``strict`` by default, as in CrateDB: an unknown column is ``ColumnUnknownException``
  (4043) unless the table was created ``WITH (column_policy = 'dynamic')``; keys of OBJECT(DYNAMIC)
  columns are learnt on insert.
* SELECT of columns or ``count(*)`` from one table with an AND of comparisons and ``[NOT] LIKE`` /
  ``ILIKE`` (CrateDB's ``%``, ``_``, ``\\`` and ``ESCAPE``) in WHERE, ORDER BY and LIMIT.
* System tables with CrateDB 6.4.3's columns: ``sys.jobs`` (id, node {id, name}, session_id, started,
  stmt, username) holds a statement from the moment its request is accepted until it ends, then
  ``sys.jobs_log`` (also ended, error, classification {type, labels}) keeps it, ``stats.jobs_log_size``
  entries; UUID ids, the statement text exactly as sent (comments included), never its arguments.
  ``sys.cluster`` (id, name, master_node, ``settings['stats']['enabled' | 'jobs_log_size']``) and
  ``sys.nodes`` (id, name, hostname, ``version['number' | 'build_hash' | 'build_snapshot']``,
  ``os_info['available_processors' | 'name' | 'arch' | 'version']``). Columns CrateDB has but the
  double does not model, and the other ``sys`` tables, are refused as unsupported.
* ``information_schema.columns`` of user tables (table_catalog, table_schema, table_name, column_name,
  ordinal_position, data_type, is_generated, is_nullable, column_default, datetime_precision,
  udt_catalog, udt_name, is_identity; is_nullable is NO for primary key columns): CrateDB's type
  names (``timestamp with time zone``, ``double precision``, ``text_array``, ...), object keys as
  ``tags['host']`` numbered after the table's columns in the order they were learnt; queries must
  name a user schema.
* ``information_schema.tables`` (``partitioned_by``: ``["month"]``, NULL when not partitioned),
  ``columns.generation_expression`` (``date_trunc('month', ts)``) and ``information_schema.table_partitions``
  (``partition_ident``, ``values`` as ``{"month": <epoch ms>}``, ``closed``, ``settings['blocks']['write']``);
  ``ALTER TABLE t PARTITION (col = ?) SET ("blocks.write" = true)`` / ``RESET ("blocks.write")`` (-1,
  ``PartitionUnknownException`` 4046 for a value without a partition), after which INSERT and COPY FROM into
  the partition, and a DELETE of rows there, are ``ClusterBlockException[blocked by:
  [RELATION_READ_AND_DDL_ONLY/8/index write (api)];]`` (4035; a multi-row INSERT writes nothing), while a
  DELETE on the partition column alone still drops it, as CrateDB 6.4.3 answered.
* The shard limit: a CREATE TABLE, or an INSERT or COPY FROM that opens partitions, beyond
  ``cluster.max_shards_per_node`` (1,000 shards on the one node unless ``SET GLOBAL [TRANSIENT | PERSISTENT]``
  says otherwise; ``RESET GLOBAL`` drops both) is refused whole, before any row is written, in CrateDB 6.4.3's
  words (``Validation Failed: 1: this action would add [n] total shards, ...``); a partitioned table opens
  shards with its partitions, not when created. ``sys.cluster`` shows the setting.
* TIMESTAMP WITHOUT TIME ZONE: wall-clock values (an offset in a string is dropped) compared as if
  UTC, so epoch-ms arguments compare with the wall clock as numbers.
* CrateDB's messages for unknown relations and schemas, with its "Maybe you meant" candidates.
* COPY TO DIRECTORY 's3://...' as CrateDB 5.x runs it: one object per shard read, named
  ``<table>_<shard>_<partitionIdent>.json[.gz]`` (the ident is CrateDB's exact encoding), NDJSON lines,
  column lists, json_object / json_array, gzip, partition pruning for ``date_trunc`` partition
  columns, ``wait_for_completion``; WITH values checked as CrateDB does (case-sensitive
  ``compression`` / ``format`` / ``protocol``, an unquoted word is a column); ``s3://`` URIs
  parsed like ``java.net.URI`` and CrateDB's ``S3URI`` (including the ``Invalid uri '<uri with
  credentials>'`` error); objects written with boto3 multipart uploads to the URI's ``host:port``;
  S3 failures as ``AmazonS3Exception`` / ``SdkClientException`` (5000), as CrateDB up to 6.2
  reports them, or, for ``CrateDouble(version="6.3"`` or later), refusals as 6.4.3's
  ``OpenDALException[<Kind> (permanent) at write => S3Error { ... } ... Context: ...]``.
* Test-only fault injection (``CrateDouble.faults`` or ``POST /_double/faults``): failing,
  delayed and truncated answers; slow COPYs that outlive their client, COPYs that fail half-way with
  CrateDB's messages (S3 access denied per version, a participating node disconnected) and are
  logged, and (as CrateDB <= 6.2) an abandoned multipart upload behind a successful COPY.

What it does not cover (refused loudly): UPDATE beyond ``SET column = value``, joins, OR/NOT, casts and
arithmetic in expressions, other constraints than primary keys, ``_id`` and the system columns but
``_seq_no`` (numbered per table, not per shard) and ``_primary_term``, named
constraints, ``ON CONFLICT``, ``file://`` targets, writing to AWS itself (a URI
without ``host:port``), other ``sys`` and ``information_schema`` tables and unmodelled columns of the
modelled ones, privileges, replicas, CrateDB 6.3+'s message for an unreachable S3 endpoint, queries
short of parameter values (CrateDB's message quotes its plan), comparing numbers with booleans.
Syntax errors are found by cratedb-sqlparse's grammar, whose ``singleStatement`` needs a statement:
their "expecting {...}" lists can lack CrateDB 6.4's ``<EOF>`` and ``';'``. Shards are written one
after another, not in parallel; rows are routed by a hash of a generated row id, not by CrateDB's
murmur3 of ``_id``.
"""

from cratedb_export_testbed.standin.faults import Faults
from cratedb_export_testbed.standin.server import CrateDouble

__all__ = ["CrateDouble", "Faults"]
