"""Reading CrateDB's answers: errors from other nodes, and releases known to fail COPY TO."""

from __future__ import annotations

import pytest
from cratedb_export_testbed.standin import CrateDouble
from cratedb_export_testbed.support import failure_message, run_export

from cratedb_export.core.cluster import ClusterFacts, Node, defect_of
from cratedb_export.core.config import ExportSpec
from cratedb_export.core.copy_jobs import JobsSettings
from cratedb_export.core.errors import PermanentError, TransientError, classify_crate_error


def _spec(target: str = "crate-astro-tutorial/metrics") -> ExportSpec:
    return ExportSpec(table="doc.metrics", timestamp_column="timestamp", target=target)


@pytest.mark.parametrize(
    ("message", "kind", "advice"),
    [
        (
            "NotSerializableExceptionWrapper[amazon_s3_exception: Access Denied (Service: Amazon S3; Status Code: "
            "403; Error Code: AccessDenied)]",
            PermanentError,
            "S3 refused the write",
        ),
        ("NotSerializableExceptionWrapper[open_d_a_l_exception: PermissionDenied (persistent)]", PermanentError, "S3"),
        ("OpenDALException[PermissionDenied (persistent) at write]", PermanentError, "S3 refused the write"),
        (
            "JobKilledException[Job killed. Participating node=QkMeXjV2Td2dAfwhOm2zXw disconnected.]",
            TransientError,
            "node disconnected",
        ),
        ("NotSerializableExceptionWrapper[sdk_client_exception: Unable to execute HTTP request]", TransientError, ""),
        (  # CrateDB 6.4.3, a CREATE TABLE or a new partition beyond the limit
            "SQLParseException[Validation Failed: 1: this action would add [4] total shards, but this cluster "
            "currently has [1000]/[1000] maximum shards open;]",
            PermanentError,
            "CrateDB is at its shard limit: drop tables or partitions it no longer needs, or raise "
            "cluster.max_shards_per_node",
        ),
    ],
)
def test_errors_from_other_nodes_are_classified_by_their_inner_kind(message, kind, advice):
    error = classify_crate_error(message, what="COPY of doc.metrics 2024-01-01")
    assert type(error) is kind and error.sent
    assert advice in str(error) and message[:30] in str(error)


def _facts(version: str, arch: str = "amd64") -> ClusterFacts:
    return ClusterFacts((Node("node-1", version, arch),), JobsSettings())


@pytest.mark.parametrize("version", ["6.3.0", "6.3.4"])
def test_region_is_missing_releases_are_refused_for_aws_targets_only(version):
    with pytest.raises(PermanentError, match=r"doc\.metrics: not exported: CrateDB 6\.3\.\d .*crate/crate#19667"):
        defect_of(_facts(version), _spec(), endpoint=None)
    defect_of(_facts(version), _spec(), endpoint="127.0.0.1:9000")  # an explicit endpoint is read right
    defect_of(_facts("6.3.5"), _spec(), endpoint=None)


def test_bucket_with_a_digit_label_is_refused_up_to_6_2_on_aws():
    spec = _spec("logs.2024/metrics")
    with pytest.raises(PermanentError, match=r"logs\.2024.*Invalid URI"):
        defect_of(_facts("6.2.11"), spec, endpoint=None)
    defect_of(_facts("6.3.5"), spec, endpoint=None)
    defect_of(_facts("5.10.4"), _spec("logs.v2024/metrics"), endpoint=None)
    defect_of(_facts("5.10.4"), spec, endpoint="127.0.0.1:9000")


def test_arm64_nodes_of_the_opendal_releases_are_refused_naming_the_node():
    facts = ClusterFacts((Node("a", "6.4.1", "amd64"), Node("b", "6.4.1", "aarch64")), JobsSettings())
    with pytest.raises(PermanentError, match=r"node b\).*crate/crate#19723"):
        defect_of(facts, _spec(), endpoint="127.0.0.1:9000")
    defect_of(_facts("6.4.2", "aarch64"), _spec(), endpoint="127.0.0.1:9000")


def test_lowest_version_of_a_mixed_cluster_is_reported():
    facts = ClusterFacts((Node("a", "6.4.3", ""), Node("b", "5.10.12", ""), Node("c", "?", "")), JobsSettings())
    assert facts.version == "5.10.12"


def test_a_run_against_a_defective_release_refuses_before_any_copy(export_env, monkeypatch, instance, secrets):
    """Through Dagster, with a stand-in that reports CrateDB 6.3.2 and an AWS target (no S3 endpoint)."""
    with CrateDouble(users={"exporter": secrets.password}, version="6.3.2") as old:
        monkeypatch.setenv("CRATEDB_URL", old.url)
        monkeypatch.setenv("CRATEDB_USERNAME", "exporter")  # also when the suite runs against a real CrateDB
        monkeypatch.setenv("CRATEDB_PASSWORD", secrets.password)
        monkeypatch.delenv("S3_ENDPOINT")
        old.engine.execute('CREATE TABLE "doc"."m" ("timestamp" TIMESTAMP WITH TIME ZONE)')
        spec = {"table": "doc.m", "timestamp_column": "timestamp", "target": "my-bucket/m", "start_date": "2024-01-01"}
        result = run_export([spec], instance, partition="2024-01-02")
        assert not result.success
        assert "doc.m: not exported: CrateDB 6.3.2 (node crate-double) reads an s3:// URI" in failure_message(result)
        assert "crate/crate#19667" in failure_message(result)
        assert not [j for j in old.jobs_log if "COPY" in j["stmt"]]
