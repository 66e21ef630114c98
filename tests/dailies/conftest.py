import sys
from pathlib import Path

# the store tests' fixtures (a real S3 service: moto's server mode on loopback), reused as they are
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from store.conftest import aws_env, bucket, moto_url, store, store_uri  # noqa: E402, F401
