"""The test bed of cratedb-export: servers to export against and a sandbox to try it in.

- `standin`: the CrateDB stand-in, speaking CrateDB's HTTP protocol and answering as CrateDB 6.4.3 does;
- `seaweedfs`: a real S3 (SeaweedFS from PyPI) on loopback;
- `postgres`: a PostgreSQL server for a production-shaped Dagster instance;
- `proxy`: a proxy between client and CrateDB that loses answers, to test what a lost answer does;
- `sandbox`: what `make run` starts — SeaweedFS, the stand-in with sample days, and `dg dev`;
- `support` and `dg_project`: sample tables, runs and `dg` projects shared by the tests and benchmarks.

Installed by `make setup` beside the project (testbed/pyproject.toml); the tests, `make run` and the
benchmarks import it as a package. Nothing in `cratedb_export` imports it.
"""
