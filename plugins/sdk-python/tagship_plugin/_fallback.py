"""Plain-Python copies of the records of `interface types` in `wit/tagship.wit`.

Used only where the componentize-py bindings are not importable (pytest on a machine that never
ran `componentize-py bindings`). Same class, field and member names as the generated
`wit_world.imports.types`, so code and tests work with either.
"""

from dataclasses import dataclass
from enum import Enum
from typing import List, Optional


@dataclass
class WorkloadVersion:
    cluster: str
    namespace: str
    workload: str
    container: str
    image: str
    version: Optional[str]


@dataclass
class DeployContext:
    component: str
    version: str
    previous_version: Optional[str]
    stage: str
    environment: str
    pipeline_url: Optional[str]
    workloads: List[WorkloadVersion]
    app_version: Optional[str]


class HealthStatus(Enum):
    HEALTHY = 0
    UNHEALTHY = 1
    UNKNOWN = 2


@dataclass
class HealthReport:
    status: HealthStatus
    value: Optional[float]
    threshold: Optional[str]
    reason: str


@dataclass
class CompatReport:
    compatible: bool
    reasons: List[str]


class EventKind(Enum):
    DEPLOY_STARTED = 0
    DEPLOY_SUCCEEDED = 1
    DEPLOY_FAILED = 2
    STAGE_STARTED = 3
    STAGE_SUCCEEDED = 4
    STAGE_FAILED = 5
    AWAITING_APPROVAL = 6
    ROLLBACK_STARTED = 7
    ROLLBACK_SUCCEEDED = 8
    ROLLBACK_FAILED = 9
    ROLLBACK_REFUSED = 10
    CHECK_BLOCKED = 11
    LOCK_WAITING = 12
    TEST = 13


@dataclass
class Event:
    kind: EventKind
    deploy_id: str
    timestamp: str
    context: DeployContext
    message: str
