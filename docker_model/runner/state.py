"""What every route of the runner shares: the store, the registry client, the scheduler, settings, the
addresses it listens on, the recent requests, the metrics' history and the key the console's secrets are signed with."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from docker_model.distribution import RegistryClient, Store
from docker_model.runner.accelerator import Accelerator
from docker_model.runner.listeners import Listeners
from docker_model.runner.metrics_history import MetricsHistory
from docker_model.runner.model_settings import SettingsBook
from docker_model.runner.recent_requests import RecentRequests
from docker_model.runner.scheduler import Scheduler


@dataclass
class RunnerState:
    store: Store
    registry: RegistryClient
    accelerator: Accelerator
    settings: SettingsBook
    scheduler: Scheduler
    listeners: Listeners
    recent_requests: RecentRequests = field(default_factory=RecentRequests)
    history: MetricsHistory = field(default_factory=MetricsHistory)
    console_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # one per runner process
