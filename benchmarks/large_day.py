"""Part 3: peak memory while verifying one large exported day (one gzip NDJSON object of >= 1 GiB), and
while turning the same day into Parquet (`format: parquet`).

The object is generated and uploaded as a stream (multipart upload, one compressed part in memory at a
time), so the benchmark itself stays small; then a fresh process counts its rows with the package's
`ObjectStore.count_rows`, exactly as read-back verification does; then the object is copied (in S3) into
a Parquet day's staging directory and another fresh process converts it with `formats.publish_parquet`.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import check, say
from services import ACCESS_KEY, SECRET_KEY, Services, run_child

BUCKET = "bench-large"
PREFIX = "metrics-2024-06-15/"
KEY = PREFIX + "metrics_0_04732d1g64p3ad1m6krj4c1g.json.gz"
MIN_UNCOMPRESSED = 1 << 30
PART_SIZE = 8 << 20  # S3 wants >= 5 MiB per part but the last
ROWS_PER_BLOCK = 20_000
CHILD = Path(__file__).resolve().parent / "child_count_rows.py"
PARQUET_CHILD = Path(__file__).resolve().parent / "child_to_parquet.py"
PARQUET_PREFIX = "metrics/dt=2024-06-15/"
DAY_START_MS = 1718409600000  # 2024-06-15T00:00:00Z
# What CrateDB's COPY TO writes for the tutorial's metrics table (the stored document, the generated
# partition column as a string since 5.9), with values that vary like real telemetry.
ROW = (
    '{"hash_id":%d,"timestamp":%d,"name":"%s","tags":{"host":"host-%03d","region":"%s","cpu":"cpu%d"},'
    '"fields":{"usage_idle":%.2f,"usage_user":%.2f,"usage_system":%.2f,"usage_iowait":%.3f},'
    '"month":"1711929600000"}\n'
)
NAMES = ("cpu", "mem", "disk", "net")
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")


@dataclass(frozen=True)
class Upload:
    rows: int
    uncompressed: int
    compressed: int
    seconds: float


@dataclass(frozen=True)
class Count:
    rows: int
    seconds: float
    baseline_rss_mib: float
    peak_rss_mib: float
    setup_s: float


def _block(first: int) -> bytes:
    lines = []
    for n in range(first, first + ROWS_PER_BLOCK):
        mixed = (n * 2654435761) % 4294967291  # a cheap, repeatable scramble for realistic entropy
        lines.append(
            ROW
            % (
                (mixed << 20) ^ n,
                DAY_START_MS + n * 17 % 86_400_000,
                NAMES[n % 4],
                mixed % 500,
                REGIONS[n % 3],
                n % 16,
                (mixed % 10_000) / 100,
                (mixed % 3_000) / 100,
                (mixed % 700) / 100,
                (mixed % 997) / 1000,
            )
        )
    return "".join(lines).encode()


def upload_large_day(services: Services) -> Upload:
    """Stream >= 1 GiB of rows through gzip (CrateDB's default level) into one multipart upload."""
    client = services.s3.client()
    services.s3.create_bucket(BUCKET)
    upload_id = client.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    started = time.perf_counter()
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts: list[dict[str, Any]] = []
    pending = bytearray()
    rows = uncompressed = compressed = 0

    def send(data: bytes) -> None:
        number = len(parts) + 1
        answer = client.upload_part(Bucket=BUCKET, Key=KEY, UploadId=upload_id, PartNumber=number, Body=data)
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        if number % 4 == 0:
            say(f"  {uncompressed / (1 << 20):,.0f} MiB of rows generated, {number} parts uploaded")

    try:
        while uncompressed < MIN_UNCOMPRESSED:
            block = _block(rows)
            rows += ROWS_PER_BLOCK
            uncompressed += len(block)
            pending += compressor.compress(block)
            if len(pending) >= PART_SIZE:
                compressed += len(pending)
                send(bytes(pending))
                pending.clear()
        pending += compressor.flush()
        compressed += len(pending)
        send(bytes(pending))
        client.complete_multipart_upload(Bucket=BUCKET, Key=KEY, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=BUCKET, Key=KEY, UploadId=upload_id)
        raise
    size = client.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"]
    if size != compressed:
        raise RuntimeError(f"uploaded {compressed} bytes but S3 holds {size}")
    return Upload(rows, uncompressed, compressed, time.perf_counter() - started)


def count_in_fresh_process(services: Services, upload: Upload) -> Count:
    """`ObjectStore.count_rows` on the object, in a process that has done nothing else."""
    result = run_child(
        CHILD,
        *(services.s3.endpoint, BUCKET, PREFIX, KEY, str(upload.compressed)),
        what="counting",
        ACCESS_KEY_ID=ACCESS_KEY,
        SECRET_ACCESS_KEY=SECRET_KEY,
    )
    if result["listed"] != [[KEY, upload.compressed]]:
        raise RuntimeError(f"the day's directory holds {result['listed']}, expected only {KEY}")
    return Count(
        rows=result["rows"],
        seconds=result["count_s"],
        baseline_rss_mib=result["baseline_rss_kib"] / 1024,
        peak_rss_mib=result["peak_rss_kib"] / 1024,
        setup_s=result["setup_s"],
    )


@dataclass(frozen=True)
class Conversion:
    rows: int
    seconds: float
    parquet_bytes: int
    baseline_rss_mib: float
    peak_rss_mib: float
    setup_s: float
    conversion: dict[str, Any]  # the path that converted the rows, as the file's key-value metadata says


MIB_PER_S_TARGET = 100  # of NDJSON converted (issue 16)
PEAK_RSS_TARGET_MIB = 300


def convert_in_fresh_process(services: Services, upload: Upload) -> Conversion:
    """`formats.publish_parquet` on the object, staged as CrateDB would stage it, in a process of its own."""
    client = services.s3.client()
    staged = PARQUET_PREFIX + "_staging/" + KEY.rsplit("/", 1)[1]
    client.copy_object(Bucket=BUCKET, Key=staged, CopySource={"Bucket": BUCKET, "Key": KEY})
    result = run_child(
        PARQUET_CHILD,
        *(services.s3.endpoint, BUCKET, PARQUET_PREFIX, str(upload.rows)),
        what="converting to Parquet",
        ACCESS_KEY_ID=ACCESS_KEY,
        SECRET_ACCESS_KEY=SECRET_KEY,
    )
    if result["staged"] != [[staged, upload.compressed]]:
        raise RuntimeError(f"the staging directory held {result['staged']}, expected only {staged}")
    if [key for key, _ in result["left"]] != [PARQUET_PREFIX + "metrics_2024-06-15.parquet"]:
        raise RuntimeError(f"the Parquet day holds {result['left']}, expected its Parquet file only")
    conversion = Conversion(
        rows=result["rows"],
        seconds=result["convert_s"],
        parquet_bytes=result["parquet_bytes"],
        baseline_rss_mib=result["baseline_rss_kib"] / 1024,
        peak_rss_mib=result["peak_rss_kib"] / 1024,
        setup_s=result["setup_s"],
        conversion=result["conversion"],
    )
    path = conversion.conversion
    say(
        f"  the tutorial-shaped day took the {path['path']} path ({path['native_rows']:,} rows native, "
        f"{path['exact_rows']:,} exact)"
    )
    check(
        "3. NDJSON converted to Parquet per second (the tutorial-shaped day)",
        upload.uncompressed / (1 << 20) / conversion.seconds,
        at_least=MIB_PER_S_TARGET,
        unit=" MiB/s",
    )
    say(f"  peak RSS converting: {conversion.peak_rss_mib:.0f} MiB (target < {PEAK_RSS_TARGET_MIB} MiB)")
    return conversion
