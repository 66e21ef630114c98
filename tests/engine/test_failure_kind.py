"""Ray's failures told apart by exception type (never by message text), without a cluster."""

import pytest
from ray import exceptions as ray_errors

from previz.engine.dispatch import FailureKind
from previz.engine.render import failure_kind
from previz.generate.errors import GeneratorOutOfMemory, InjectedFault
from previz.store.errors import StoreError


def raised_by_a_task(error: BaseException) -> BaseException:
    """What `ray.get` raises for a remote call that raised `error`."""
    return ray_errors.RayTaskError("render", "Traceback ...", error).as_instanceof_cause()


def preempted() -> ray_errors.RayActorError:
    return ray_errors.RayActorError(preempted=True)  # an autoscaler drained its node


LOST = ray_errors.ObjectLostError("ab" * 14, None, "")
OWNER_DIED = ray_errors.OwnerDiedError("ab" * 14, None, "")


@pytest.mark.parametrize("error, node_alive, encode, kind", [
    (raised_by_a_task(StoreError("s3://b: 503 slow down")), True, False, FailureKind.STORE),
    (raised_by_a_task(StoreError("s3://b: 503")), True, True, FailureKind.STORE),
    (raised_by_a_task(GeneratorOutOfMemory("out of GPU memory", model="m", tried={})), True,
     False, FailureKind.OUT_OF_MEMORY),
    (raised_by_a_task(InjectedFault("node was terminated")), True, False,  # text says nothing
     FailureKind.GENERATOR),
    (raised_by_a_task(RuntimeError("generator returned 8 frames")), True, True,
     FailureKind.GENERATOR),
    (ray_errors.ActorDiedError(), True, False, FailureKind.LOST_WORKER),
    (ray_errors.ActorDiedError(), False, False, FailureKind.LOST_NODE),  # its node is gone
    (ray_errors.ActorUnavailableError("unreachable", None), True, False, FailureKind.LOST_WORKER),
    (ray_errors.WorkerCrashedError(), True, False, FailureKind.LOST_WORKER),
    (preempted(), True, False, FailureKind.LOST_NODE),
    (ray_errors.NodeDiedError("node gone"), True, False, FailureKind.LOST_NODE),
    (OWNER_DIED, True, True, FailureKind.LOST_NODE),  # the worker owning the frames died
    (LOST, True, True, FailureKind.LOST_NODE),
    (ray_errors.WorkerCrashedError(), True, True, FailureKind.GENERATOR),  # after its retries
])
def test_failures_are_classified_by_type(error, node_alive, encode, kind):
    assert failure_kind(error, lambda: node_alive, encode=encode) is kind
