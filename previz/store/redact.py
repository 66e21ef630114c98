"""Keep credentials out of messages, logs, manifests and the ledger."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["redact", "find_credentials", "CREDENTIALS_HELP"]

CREDENTIALS_HELP = (
    "put credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), "
    "an AWS profile (AWS_PROFILE) or ~/.aws/credentials, never in a URI"
)

# Every SigV4/SigV2 query parameter is sensitive or pointless to show; hide all of them.
_AMZ_QUERY = re.compile(r"(?i)((?:X-Amz-[A-Za-z-]+|AWSAccessKeyId|Signature|Expires)=)[^&\s\"'<>]*")
_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|ANPA|ANVA|AGPA)[A-Z0-9]{12,}\b")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"'<>]+@")
_SECRET_ASSIGN = re.compile(
    r"(?i)\b(aws_secret_access_key|aws_session_token|secret_access_key|session_token)"
    r"(\s*[=:]\s*)[^\s,;\"']+"
)

# a signing key (content credentials) pasted where it must never go
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                          re.DOTALL)


def redact(text: str) -> str:
    """`text` with presigned query values, access key ids, URL user-info, private keys and
    secrets masked."""
    text = _PRIVATE_KEY.sub(r"-----BEGIN \1PRIVATE KEY-----***", text)
    text = _AMZ_QUERY.sub(r"\1***", text)
    text = _USERINFO.sub(r"\1***@", text)
    text = _ACCESS_KEY.sub("***", text)
    return _SECRET_ASSIGN.sub(r"\1\2***", text)


def find_credentials(url: str) -> bool:
    """Whether `url` carries user-info (`user:pass@host`) or a presigned signature."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    return "@" in parts.netloc or redact(url) != url
