"""Which models are loaded, in which worker process, and for how long.

A model loads on first use; requests for a model that is loading wait for that one load. Before it loads,
its memory is estimated from its GGUF metadata and compared with the room it has (`fit.py`): idle models
make room first, least recently used first; then a context that was not set explicitly shrinks; else the
load is refused (ModelDoesNotFit, a 507). Several models may stay loaded, up to `max_loaded`; past that the
least recently used idle model is evicted. Each model unloads once idle for its keep-alive (5 minutes by
default, 0 at once, -1 never). A worker that died is noticed on the next request and started afresh.
A model whose layers go to a pool of RPC servers leases its endpoints first (`rpc_pool.py` says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from docker_model.distribution import ConflictError, DistributionError, Model, Store
from docker_model.reference import familiar_name
from docker_model.runner.accelerator import Accelerator
from docker_model.runner.fit import Fit, ModelDoesNotFit, Room, plan, shape_of, wanted_for
from docker_model.runner.launch import (
    Prestarted,
    WorkerSpec,
    log_path_for,
    new_socket_dir,
    socket_path_for,
    spec_for,
)
from docker_model.runner.memory import room_for_a_model
from docker_model.runner.metrics import RunnerMetrics
from docker_model.runner.model_settings import ModelSettings, SettingsBook, effective_keep_alive
from docker_model.runner.rpc_pool import (
    EndpointBusy,
    Offer,
    Placement,
    Pool,
    PoolError,
    busy_message,
    probe_pool,
    resolve,
)
from docker_model.runner.workers import WorkerProcess, WorkerStartError
from docker_model.units import human_bytes

if TYPE_CHECKING:
    from docker_model.rpc_protocol import Endpoint

log = logging.getLogger(__name__)
# (spec, socket path, log path) -> a started worker; WorkerProcess.start, or a stand-in in fast tests
StartWorker = Callable[[WorkerSpec, Path, Path], Awaitable[WorkerProcess]]
REAP_INTERVAL_SECONDS = 1.0
USE_RECORD_SECONDS = 60.0  # how often the use of models that stay loaded is written down (for `prune`)
BUSY_WAIT_SECONDS = 60.0  # how long a model waits for a loaded one to finish its requests and make room
MEMORY_CAP_AFTER_FAILURE = 0.75  # of the estimate a model ran out of memory with
VRAM_MARGIN = 256 * 1024**2  # GPU memory a new model leaves free (the driver's and other programs')


class ModelLoadError(Exception):
    """The model's worker did not start: the message ends with the last line of its log."""


class ModelsBusyError(Exception):
    """Every loaded model is busy and no other may be loaded."""


def _among(entries: list[LoadedModel], key: str, loaded: LoadedModel) -> bool:
    return any(loaded is entry for entry in entries)


@dataclass
class LoadedModel:
    model: Model
    name: str  # the name it was asked for, as `ps` shows it
    worker: WorkerProcess
    fit: Fit  # its context per sequence, its sequences, their estimated memory, and why
    keep_alive: float
    last_used: float = field(default_factory=time.time)
    in_flight: int = 0
    recorded_use: float = 0.0  # the last use written to the store
    placement: Placement | None = None  # the RPC servers holding its layers, leased to it

    @property
    def used_at(self) -> float:
        """When it was last used: now while it answers requests."""
        return time.time() if self.in_flight else self.last_used

    @property
    def context_size(self) -> int:
        return self.fit.ctx_per_seq

    @property
    def expires_at(self) -> float | None:
        return None if self.keep_alive < 0 else self.last_used + self.keep_alive

    def expired(self, now: float) -> bool:
        expires = self.expires_at
        return self.in_flight == 0 and expires is not None and now >= expires


class Scheduler:
    def __init__(
        self,
        store: Store,
        settings: SettingsBook,
        accelerator: Accelerator,
        log_dir: Path,
        max_loaded: int = 2,
        parallel: int = 4,
        start_worker: StartWorker = WorkerProcess.start,
        prestarted: Prestarted | None = None,
        memory_budget: int | None = None,
        metrics: RunnerMetrics | None = None,
        rpc_servers: tuple[Endpoint, ...] = (),
    ) -> None:
        """`memory_budget`: bytes of RAM all models may take together; None: what the machine has free.
        `rpc_servers`: the runner-wide pool of RPC servers."""
        self.store = store
        self.settings = settings
        self.accelerator = accelerator
        self.log_dir = log_dir
        self.max_loaded = max_loaded
        self.parallel = parallel
        self.memory_budget = memory_budget
        self.metrics = metrics or RunnerMetrics(memory_budget)
        self.memory_caps: dict[str, int] = {}  # model id -> RAM its next loads may take, after it ran out
        self.start_worker = start_worker
        self.socket_dir = prestarted.socket_dir if prestarted else new_socket_dir()
        self.prestarted = prestarted
        self.loaded: dict[str, LoadedModel] = {}
        self.loading: dict[str, asyncio.Task[LoadedModel]] = {}
        self.lock = asyncio.Lock()
        self.some_idle = asyncio.Event()  # set when a loaded model's last request ends
        self.being_deleted: set[str] = set()  # IDs of models `prune` is deleting: not loaded meanwhile
        self.rpc_servers = rpc_servers
        self.leasing: dict[str, tuple[str, Pool]] = {}  # model ID -> (name, pool) of the models loading on one

    async def acquire(self, model: Model, name: str, needed: int = 0) -> LoadedModel:
        """The loaded model, loading it first if needed; pair every call with `release`. `needed`: tokens
        the request in hand needs, below which a load never shrinks the context."""
        while True:
            async with self.lock:
                if model.id in self.being_deleted:
                    raise ConflictError(f"model {name} is being deleted (docker model prune): pull it again to use it")
                loaded = self.loaded.get(model.id)
                if loaded is not None and loaded.worker.alive:
                    loaded.in_flight += 1
                    loaded.last_used = time.time()
                    return loaded
                if loaded is not None:
                    worker = loaded.worker
                    log.warning(
                        "worker for %s (pid %s) %s; it will be started again", name, worker.pid, worker.exit_cause()
                    )
                    if worker.out_of_memory:
                        self._ran_out_of_memory(model, name, loaded.fit)
                    self._take_off(loaded)
                task = self.loading.get(model.id)
                if task is None and loaded is None:
                    task = asyncio.create_task(self._load(model, name, needed))
                    self.loading[model.id] = task
            if task is None:  # a dead worker: clean it up, then load afresh on the next turn
                assert loaded is not None
                await loaded.worker.stop()
                continue
            try:
                await asyncio.shield(task)
            finally:
                async with self.lock:
                    if self.loading.get(model.id) is task and task.done():
                        del self.loading[model.id]

    def release(self, loaded: LoadedModel) -> None:
        loaded.in_flight -= 1
        loaded.last_used = time.time()
        if loaded.in_flight == 0:
            self.some_idle.set()

    async def wait_for_a_slot(self) -> None:
        """Return once a model may be loaded: a slot is free or a loaded model is idle (it can make room);
        ModelsBusyError after BUSY_WAIT_SECONDS of every loaded model answering requests."""
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        while True:
            async with self.lock:
                if len(self.loaded) < self.max_loaded or any(m.in_flight == 0 for m in self.loaded.values()):
                    return
                self.some_idle.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModelsBusyError(
                    f"{self.max_loaded} models are loaded and stayed busy for {BUSY_WAIT_SECONDS:.0f} s; "
                    "retry later, or raise DOCKER_MODEL_MAX_LOADED_MODELS"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.some_idle.wait(), remaining)

    async def _load(self, model: Model, name: str, needed: int = 0) -> LoadedModel:
        """Load the model, on its pool of RPC servers if it has one: leased for the load, then for as long
        as it stays loaded with a live worker."""
        settings = self.settings.get(model.id)
        pool = resolve(settings, self.rpc_servers)
        try:
            if pool is not None:
                await self._lease(model, name, pool)
            return await self._load_on(model, name, settings, pool, needed)
        except PoolError as error:
            assert pool is not None  # only a pool's lease and probes raise these
            raise type(error)(f"cannot load {name} on its RPC servers ({pool.source}): {error}") from None
        finally:
            self.leasing.pop(model.id, None)

    async def _load_on(
        self, model: Model, name: str, settings: ModelSettings, pool: Pool | None, needed: int
    ) -> LoadedModel:
        """Size the model to its room and start its worker. Other models make room only as far as memory
        requires before the load, and for the slot limit only once it succeeded: a model that fails to load
        evicts nothing. A pool's endpoints are probed first: llama.cpp aborts a worker that cannot connect."""
        placement = None if pool is None else await asyncio.to_thread(probe_pool, pool)
        bundle = await asyncio.to_thread(self.store.bundle, model)
        try:
            fit = await self._fit(model, name, bundle.gguf_path, settings, needed, placement)
        except ModelDoesNotFit as error:
            log.error("%s does not fit: %s", name, error)
            raise ModelDoesNotFit(f"model {name} does not fit in memory: {error}") from None
        await self.wait_for_a_slot()
        spec = spec_for(bundle, settings, self.accelerator, fit, name, model.short_id, placement)
        log.info("loading %s (%d tokens per sequence × %d: %s)", name, fit.ctx_per_seq, fit.parallel, fit.reason)
        log_path = log_path_for(self.log_dir, model)
        label = familiar_name(name)
        started = time.monotonic()
        try:
            worker = await self._start(model, spec, log_path)
        except WorkerStartError as error:
            self.metrics.loads.labels(label, "out_of_memory" if error.out_of_memory else "failed").inc()
            log.error("%s failed to load: %s", name, error)
            if error.out_of_memory:
                self._ran_out_of_memory(model, name, fit)
                cause = f"it ran out of memory (estimated at {human_bytes(fit.estimate.ram)}); the next load uses less"
            else:
                cause = (error.log_tail.strip().splitlines() or [str(error)])[-1]
            raise ModelLoadError(f"model {name} failed to load: {cause} (full log: {log_path})") from None
        self.metrics.loads.labels(label, "loaded").inc()
        self.metrics.load_seconds.labels(label).observe(time.monotonic() - started)
        keep_alive = effective_keep_alive(settings)
        loaded = LoadedModel(model, name, worker, fit, keep_alive, placement=placement)
        async with self.lock:
            self.loaded[model.id] = loaded
        await self._record_use([loaded])
        await self._evict_idle(lambda: len(self.loaded) > self.max_loaded, model, "loaded_models_limit")
        return loaded

    def room(self, model: Model, placement: Placement | None = None) -> Room:
        """What `model` may take now: the budget less the other loaded models' estimates, or the machine's
        available memory less a margin; less again after it ran out of memory with more. With a pool of RPC
        servers, their offers stand where the GPU's free memory would."""
        unified = self.accelerator.unified_memory
        others = [m for m in self.loaded.values() if m.model.id != model.id]
        used = sum(m.fit.estimate.total if unified and not m.placement else m.fit.estimate.ram for m in others)
        ram = room_for_a_model(self.memory_budget, used)
        free_vram = self.accelerator.free_vram() if self.accelerator.free_vram is not None else None
        vram = None if free_vram is None else free_vram - VRAM_MARGIN
        cap = self.memory_caps.get(model.id)
        if cap is None or (ram is not None and ram <= cap):
            room = Room(ram, vram, unified=unified)
        else:
            room = Room(cap, vram, note="it ran out of memory with more", unified=unified)
        return placement.room(room) if placement else room

    def _ran_out_of_memory(self, model: Model, name: str, fit: Fit) -> None:
        """Remember that `model` ran out of memory as `fit` sized it: its next loads get less."""
        cap = int(fit.estimate.ram * MEMORY_CAP_AFTER_FAILURE)
        self.memory_caps[model.id] = min(cap, self.memory_caps.get(model.id, cap))
        log.error(
            "%s ran out of memory with %d tokens × %d sequences, estimated at %s; its next load gets at most %s",
            name, fit.ctx_per_seq, fit.parallel, human_bytes(fit.estimate.ram), human_bytes(cap),
        )  # fmt: skip

    async def preview(self, model: Model, settings: ModelSettings) -> Fit:
        """How `model` would load now with `settings` (the loaded fit if it runs with them), other loaded
        models staying; ModelDoesNotFit when it would not."""
        loaded = self.loaded.get(model.id)
        if loaded is not None and settings == self.settings.get(model.id):
            return loaded.fit
        pool = resolve(settings, self.rpc_servers)
        placement = None if pool is None else await self._preview_placement(model, pool)
        bundle = await asyncio.to_thread(self.store.bundle, model)
        shape = await asyncio.to_thread(shape_of, bundle.gguf_path)
        wanted = wanted_for(model.config, settings, self.parallel, self.accelerator.gpu_offload or bool(placement))
        return plan(shape, wanted, self.room(model, placement))

    async def _fit(
        self, model: Model, name: str, gguf: Path, settings: ModelSettings, needed: int, placement: Placement | None
    ) -> Fit:
        """The model's fit, idle models evicted first as far as it needs them to load as it wants."""
        early = self.prestarted
        if early is not None and early.model.id == model.id:
            return early.fit  # sized before it started, as this would have (nothing else was loaded)
        shape = await asyncio.to_thread(shape_of, gguf)
        wanted = wanted_for(model.config, settings, self.parallel, self.accelerator.gpu_offload or bool(placement))
        full = wanted.estimate(shape)
        await self._evict_idle(lambda: not self.room(model, placement).holds(full), model, "memory")
        return plan(shape, wanted, self.room(model, placement), needed, familiar_name(name))

    def leases(self) -> dict[str, tuple[str, str]]:
        """Which model holds each leased RPC endpoint: address -> (model ID, name). A loaded model holds its
        pool while its worker lives (a dead worker's connections are closed); a loading one while it loads."""
        held = {
            address: (key, m.name)
            for key, m in self.loaded.items()
            if m.placement and m.worker.alive
            for address in m.placement.pool.addresses
        }
        held.update({address: (key, name) for key, (name, pool) in self.leasing.items() for address in pool.addresses})
        return held

    def leased_offers(self) -> dict[str, tuple[Offer, LoadedModel]]:
        """The endpoints leased to loaded models with a live worker: what each offered at the load, and its holder."""
        return {
            offer.endpoint.address: (offer, m)
            for m in self.loaded.values()
            if m.placement and m.worker.alive
            for offer in m.placement.offers
        }

    async def _lease(self, model: Model, name: str, pool: Pool) -> None:
        """Lease `pool`'s endpoints to `model`: an RPC server serves one client at a time, and llama.cpp
        aborts a worker whose connection fails, so two workers never share an endpoint. An idle holder is
        evicted; a busy or loading one makes this EndpointBusy (a 503 naming the endpoint and the holder)."""
        while True:
            async with self.lock:
                held = {a: h for a, h in self.leases().items() if a in pool.addresses and h[0] != model.id}
                if not held:
                    self.leasing[model.id] = (name, pool)
                    return
                for address, (holder, holder_name) in held.items():
                    loaded = self.loaded.get(holder)
                    if loaded is None or loaded.in_flight:
                        raise EndpointBusy(busy_message(address, holder_name))
            holders = {holder for holder, _ in held.values()}
            await self._evict_idle(lambda: True, model, "rpc_endpoint", among=holders)  # each idle holder

    async def _preview_placement(self, model: Model, pool: Pool) -> Placement:
        """`pool` as `model` would find it now, probing only the endpoints nobody holds: a leased one is
        taken as it offered at its holder's load, and one held by a model still loading is busy."""
        known = {address: offer for address, (offer, _) in self.leased_offers().items()}
        for address, (holder, holder_name) in self.leases().items():
            if address in pool.addresses and address not in known and holder != model.id:
                raise EndpointBusy(busy_message(address, holder_name))
        return await asyncio.to_thread(probe_pool, pool, known)

    async def _start(self, model: Model, spec: WorkerSpec, log_path: Path) -> WorkerProcess:
        """The model's worker: the one launched before the runner started, if it runs as `spec` says."""
        socket_path = socket_path_for(self.socket_dir, model)
        early = self.prestarted
        if early is not None and early.model.id == model.id:
            self.prestarted = None
            if early.spec == spec:
                return await WorkerProcess.adopt(spec, early.process, socket_path, log_path)
            early.process.kill()  # its settings changed since: start it afresh
            await asyncio.to_thread(early.process.wait)
        return await self.start_worker(spec, socket_path, log_path)

    def load_prestarted(self) -> None:
        """Begin adopting the worker launched before the runner started, as if a request had asked for it:
        once loaded, it unloads after its keep-alive like any other."""
        if self.prestarted is None:
            return
        early = self.prestarted
        task = self.loading[early.model.id] = asyncio.create_task(self._load(early.model, early.name))

        def done(task: asyncio.Task[LoadedModel]) -> None:
            # Nobody may be waiting for it: a failure is logged, and the next request loads afresh.
            if not task.cancelled() and task.exception() is not None:
                log.warning("loading %s ahead failed: %s", early.name, task.exception())
            if self.loading.get(early.model.id) is task:
                del self.loading[early.model.id]

        task.add_done_callback(done)

    async def _evict_idle(
        self, short: Callable[[], bool], model: Model, reason: str, among: set[str] | None = None
    ) -> None:
        """Evict idle models other than `model` (of the IDs `among`, when given), least recently used first,
        while `short()` holds."""
        while True:
            async with self.lock:
                idle = [
                    m
                    for m in self.loaded.values()
                    if m.in_flight == 0 and m.model.id != model.id and (among is None or m.model.id in among)
                ]
                if not short() or not idle:
                    return
                victim = min(idle, key=lambda m: m.last_used)
                self._take_off(victim)
            log.info("evicting %s to make room for %s", victim.name, model.tags[0] if model.tags else model.id)
            self.metrics.evictions.labels(reason).inc()
            await asyncio.gather(victim.worker.stop(), self._record_use([victim]))

    async def unload(self, model_ids: list[str] | None = None) -> list[str]:
        """Unload the given models (all when None); returns the names unloaded."""
        return await self._unload_where(lambda key, loaded: model_ids is None or key in model_ids)

    async def _unload_where(self, chosen_if: Callable[[str, LoadedModel], bool]) -> list[str]:
        """Unload the loaded models `chosen_if` picks (by model id and entry), chosen under the lock."""
        async with self.lock:
            chosen = [m for key, m in self.loaded.items() if chosen_if(key, m)]
            for loaded in chosen:
                self._take_off(loaded)
        await asyncio.gather(*(loaded.worker.stop() for loaded in chosen), self._record_use(chosen))
        return [loaded.name for loaded in chosen]

    def _take_off(self, loaded: LoadedModel) -> None:
        """Remove `loaded` from the loaded models (the lock held). The runner stops a worker only once it took
        it off, so one found dead here crashed (or the watchdog killed it): counted for `/metrics` and alerts."""
        del self.loaded[loaded.model.id]
        if not loaded.worker.alive:
            self.metrics.worker_crashed(loaded.name, loaded.worker.exit_cause())

    async def _record_use(self, models: list[LoadedModel]) -> None:
        """Record in the store when these models were last used (for `prune`): at each load and unload, and
        every USE_RECORD_SECONDS for those that stay loaded and were used since (`record_recent_use`)."""
        if not models:
            return
        uses = {m.model.id: m.used_at for m in models}
        try:
            await asyncio.to_thread(self.store.record_use, uses)
        except (OSError, DistributionError) as error:
            log.warning("could not record when models were last used: %s", error)
            return
        for m in models:
            m.recorded_use = uses[m.model.id]

    async def record_recent_use(self) -> None:
        """Record the use of loaded models used since it was last recorded, so that a runner killed loses
        at most USE_RECORD_SECONDS of it, and `prune` never takes a model loaded for days but used today."""
        await self._record_use([m for m in self.loaded.values() if m.used_at > m.recorded_use])

    async def unload_all(self) -> list[str]:
        return await self.unload(None)

    async def busy(self) -> set[str]:
        """The IDs of the models loaded or being loaded: in use, never pruned."""
        async with self.lock:
            return set(self.loaded) | set(self.loading)

    @contextlib.asynccontextmanager
    async def deleting(self, model_ids: Iterable[str]) -> AsyncIterator[set[str]]:
        """Mark those of `model_ids` that are neither loaded nor loading as being deleted, for the block:
        `acquire` refuses them meanwhile, so none loads while its files go. Yields the IDs marked. The
        scheduler's lock is held only to mark them, never while the store deletes."""
        async with self.lock:
            marked = {i for i in model_ids if i not in self.loaded and i not in self.loading} - self.being_deleted
            self.being_deleted |= marked
        try:
            yield marked
        finally:
            self.being_deleted -= marked

    def requests_in_flight(self, model_id: str) -> int:
        loaded = self.loaded.get(model_id)
        return 0 if loaded is None else loaded.in_flight

    def running(self) -> list[LoadedModel]:
        return sorted(self.loaded.values(), key=lambda m: m.name)

    def busy_workers(self) -> list[WorkerProcess]:
        """The workers of loaded models with requests in flight (what the hung-worker watchdog watches)."""
        return [loaded.worker for loaded in self.loaded.values() if loaded.in_flight > 0]

    async def reap_forever(self) -> None:
        """Unload the models whose keep-alive ran out or whose worker died, and record the use of the others."""
        recorded = time.monotonic()
        while True:
            await asyncio.sleep(REAP_INTERVAL_SECONDS)
            now = time.time()
            expired = [m for m in self.loaded.values() if m.expired(now) or not m.worker.alive]
            if expired:  # those very entries: not a fresh worker that replaced a dead one under the same id
                await self._unload_where(partial(_among, expired))
            if time.monotonic() - recorded >= USE_RECORD_SECONDS:
                recorded = time.monotonic()
                await self.record_recent_use()

    async def close(self) -> None:
        await self.unload_all()
        with contextlib.suppress(OSError):
            self.socket_dir.rmdir()
