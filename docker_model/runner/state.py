"""What every route of the runner shares: the store, the registry client, the scheduler, settings and
the addresses it listens on."""

from __future__ import annotations

from dataclasses import dataclass

from docker_model.distribution import RegistryClient, Store
from docker_model.runner.accelerator import Accelerator
from docker_model.runner.listeners import Listeners
from docker_model.runner.model_settings import SettingsBook
from docker_model.runner.scheduler import Scheduler


@dataclass
class RunnerState:
    store: Store
    registry: RegistryClient
    accelerator: Accelerator
    settings: SettingsBook
    scheduler: Scheduler
    listeners: Listeners
