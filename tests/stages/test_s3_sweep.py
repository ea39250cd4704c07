"""Open multipart uploads killed writers leave in S3 are aborted by the sweep (issue 11 item 14)."""

from __future__ import annotations

import uuid

import pytest

from stages.storage import load_backend
from stages.storage.s3 import S3Backend
from stages.storage.s3_upload import PART_SIZE
from tests.s3 import MotoServer, make_bucket, s3_client

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> str:
    return make_bucket(moto_s3)


@pytest.fixture
def s3(moto_s3: MotoServer, bucket: str) -> S3Backend:
    backend = load_backend(f"s3://{bucket}/t-{uuid.uuid4().hex[:12]}/", moto_s3.options())
    assert isinstance(backend, S3Backend)
    return backend


def leave_upload(server: MotoServer, bucket: str, object_key: str) -> None:
    """What a writer killed after its first part leaves: an upload never completed nor aborted."""
    client = s3_client(server)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=object_key)["UploadId"]
    client.upload_part(Bucket=bucket, Key=object_key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1024)


def pending(server: MotoServer, bucket: str, prefix: str) -> list[str]:
    uploads = s3_client(server).list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return sorted(upload["Key"] for upload in uploads)


def test_killed_uploads_under_the_root_are_aborted(moto_s3, bucket, s3):
    # moto reports every upload as initiated in 2010, so all of them are past the one-day floor.
    leave_upload(moto_s3, bucket, s3.root + "stage/user/alice/big.csv")
    leave_upload(moto_s3, bucket, s3.root + "stage/user/alice/dir/other.csv")
    elsewhere = f"not-ours-{uuid.uuid4().hex[:8]}/x.csv"
    leave_upload(moto_s3, bucket, elsewhere)
    assert s3.sweep_temp_files(0.0) == 2
    assert pending(moto_s3, bucket, s3.root) == []
    assert pending(moto_s3, bucket, elsewhere) == [elsewhere]  # outside the backend's root
    assert list(s3.list_files("")) == []


def test_an_upload_in_progress_is_never_aborted(moto_s3, bucket, s3):
    with s3.open_output("stage/user/alice/slow.bin") as out:
        out.write(b"a" * PART_SIZE)  # a full part: the multipart upload is open now
        assert pending(moto_s3, bucket, s3.root) == [s3.root + "stage/user/alice/slow.bin"]
        assert s3.sweep_temp_files(0.0) == 0
        out.write(b"b")
    assert s3.stat("stage/user/alice/slow.bin").size == PART_SIZE + 1
    assert pending(moto_s3, bucket, s3.root) == []


def test_uploads_younger_than_the_floor_are_kept(moto_s3, bucket, s3):
    key = s3.root + "stage/user/alice/big.csv"
    leave_upload(moto_s3, bucket, key)
    s3.min_upload_age_seconds = 100 * 365 * 24 * 3600.0  # moto's 2010 uploads are younger than that
    assert s3.sweep_temp_files(0.0) == 0
    assert pending(moto_s3, bucket, s3.root) == [key]
