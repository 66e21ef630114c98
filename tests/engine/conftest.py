import pytest
from engine_support import logical_cluster


@pytest.fixture(scope="module")
def ray_cluster():
    """Two nodes with two logical GPUs each (plus a CPU-only head)."""
    with logical_cluster() as cluster:
        yield cluster
