"""Helpers shared by the store tests (a module, not conftest, so tests can import it by name)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


def raw_client(url: str) -> Any:
    """A plain boto3 client straight at moto, for arranging and inspecting behind the store."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )
