"""The runner's pools of RPC servers: which pool a model uses and why, the split and the memory fit over the
servers' offers, leases (one model per server), and probe errors as load errors.

The fast tests need no server. The scheduler's tests probe real `docker model rpc-server` processes
(tests/fixtures/rpc_fixtures.py) but load stand-in workers (tests/runner/test_host_side.py), which never
connect to them: a worker loading over real servers is the pool tests' (tests/rpc/). The last test goes
through the docker CLI and a real runner.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from docker_model.cli.sizing import pool_text
from docker_model.distribution import Model, Store
from docker_model.rpc_protocol import CMD_HELLO, CONN_CAPS_SIZE, Endpoint, parse_endpoints
from docker_model.runner.api import rpc as rpc_routes
from docker_model.runner.api.error_table import response_for
from docker_model.runner.fit import ALL_LAYERS, ModelDoesNotFit, Room, plan, wanted_for
from docker_model.runner.launch import WorkerSpec, spec_for
from docker_model.runner.memory_estimate import ModelShape
from docker_model.runner.model_settings import ModelSettings
from docker_model.runner.rpc_pool import (
    RUNNER_WIDE,
    RUNTIME_FLAG,
    SET_WITH_CONFIGURE,
    EndpointBusy,
    EndpointFailed,
    Offer,
    Placement,
    Pool,
    PoolMisconfigured,
    busy_message,
    configured,
    resolve,
)
from docker_model.runner.runtime_flags import check_runtime_flags
from docker_model.runner.scheduler import Scheduler
from tests.cli.test_everyday_errors import one_line_error
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import free_port
from tests.fixtures.rpc_servers import RpcServer, rpc_server
from tests.fixtures.runner import make_runner_env
from tests.runner.test_host_side import StandInLauncher, StandInWorker, models, scheduler_for

__all__ = ["models"]  # the fixture, shared with the scheduler's other tests

WIDE = parse_endpoints("10.0.0.1:50052")
FLAGS = ["--rpc", "10.0.0.2:50052"]


def test_configure_wins_over_the_runtime_flags_which_win_over_the_runner_wide_pool() -> None:
    assert resolve(ModelSettings(), WIDE) == Pool(WIDE, RUNNER_WIDE)
    assert resolve(ModelSettings(runtime_flags=FLAGS), WIDE) == Pool(parse_endpoints(FLAGS[1]), RUNTIME_FLAG)
    pool = resolve(ModelSettings(runtime_flags=[*FLAGS, "-ts", "3"], rpc="10.0.0.3:50052@2G"), WIDE)
    assert pool is not None and pool.source == SET_WITH_CONFIGURE
    assert pool.addresses == ("10.0.0.3:50052",) and pool.endpoints[0].cap == 2 * 10**9 and pool.shares == (3,)
    assert resolve(ModelSettings(runtime_flags=FLAGS, rpc="none"), WIDE) is None  # opted out of every pool
    assert resolve(ModelSettings(), ()) is None


def test_configure_rpc_takes_servers_none_or_default() -> None:
    assert configured(" 10.0.0.3:50052@512M ") == "10.0.0.3:50052@512M"
    assert configured("none") == "none" and configured("NONE") == "none"
    assert configured("default") is None  # forgets the setting: the flags' or the runner-wide pool again
    with pytest.raises(ValueError, match="rpc is empty: give HOST:PORT"):
        configured("")
    with pytest.raises(ValueError, match="--rpc: RPC endpoint 'a' needs a port"):
        configured("a")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ModelSettings(runtime_flags=[*FLAGS, "--tensor-split", "1,3"]), "gives 2 shares for the 1 RPC servers"),
        (ModelSettings(runtime_flags=["-ts", "1,3"], rpc="none"), "this model has none: drop it"),
        (ModelSettings(runtime_flags=["-ngl", "0"]), "--n-gpu-layers 0 keeps every layer off the RPC servers"),
    ],
)
def test_settings_that_contradict_the_pool_are_refused_naming_the_fix(settings: ModelSettings, message: str) -> None:
    with pytest.raises(PoolMisconfigured, match=message):
        resolve(settings, WIDE)


def test_the_rpc_runtime_flags_are_checked_when_configured() -> None:
    check_runtime_flags(["--rpc", "10.0.0.1:50052@1G,10.0.0.2:50052", "-ts", "1,3"])
    with pytest.raises(ValueError, match=r"runtime flag --rpc: RPC endpoint '10\.0\.0\.1' needs a port"):
        check_runtime_flags(["--rpc", "10.0.0.1"])
    with pytest.raises(ValueError, match="runtime flag --tensor-split: '1,-1' is not a list of shares"):
        check_runtime_flags(["--tensor-split", "1,-1"])


def placement(pool: Pool, *offers: int) -> Placement:
    return Placement(pool, tuple(Offer(e, "7.0.0", free, free) for e, free in zip(pool.endpoints, offers, strict=True)))


TWO = parse_endpoints("127.0.0.1:1,127.0.0.1:2@100M")


def test_layers_split_by_offer_unless_shares_are_given_and_the_first_server_to_fill_up_decides() -> None:
    by_offer = placement(Pool(TWO, RUNNER_WIDE), 300 * 10**6, 900 * 10**6)  # the second capped at 100 MB
    assert by_offer.fractions == pytest.approx((0.75, 0.25))
    assert by_offer.capacity() == 400 * 10**6  # the sum of the offers
    given = placement(Pool(TWO, RUNNER_WIDE, (1, 3)), 300 * 10**6, 900 * 10**6)
    assert given.fractions == pytest.approx((0.25, 0.75))
    assert given.capacity() == pytest.approx(100 * 10**6 / 0.75, abs=1)  # the capped server holds 3/4


def test_a_pool_too_small_is_refused_with_each_servers_offer_not_gpu_memory(tmp_path: Path) -> None:
    shape = ModelShape.from_gguf(write_gguf(tmp_path / "tiny.gguf"))
    wanted = wanted_for({}, ModelSettings(context_size=2048), 1, gpu_offload=True)
    small = placement(Pool(TWO, RUNNER_WIDE, (1, 3)), 1000, 1000).room(Room(None))
    with pytest.raises(ModelDoesNotFit) as refused:
        plan(shape, wanted, small)
    message = str(refused.value)
    assert "1.33kB of the RPC servers' offers (127.0.0.1:1 offers 1.00kB for 25% of the layers, " in message
    assert "127.0.0.1:2 offers 1.00kB for 75% of the layers), not GPU memory" in message
    roomy = placement(Pool(TWO, RUNNER_WIDE, (1, 3)), 10**9, 10**8)
    fit = plan(shape, wanted, roomy.room(Room(None)))
    shares = roomy.shares_of(fit.estimate)
    assert shares[1] == pytest.approx(3 * shares[0], abs=1) and all(share > 0 for share in shares)


def test_the_worker_gets_the_resolved_pool_once_with_every_layer(tmp_path: Path) -> None:
    settings = ModelSettings(runtime_flags=["--temp", "0.2", "--rpc", "10.0.0.9:50052", "-ts", "1,3"])
    pool = Pool(TWO, SET_WITH_CONFIGURE, (1, 3))
    bundle = SimpleNamespace(gguf_path=tmp_path / "m.gguf", template_path=None)
    fit = SimpleNamespace(ctx_per_seq=2048, parallel=1)
    cpu = SimpleNamespace(gpu_offload=False)
    spec = spec_for(bundle, settings, cpu, fit, "m", placement=placement(pool, 1, 1))  # type: ignore[arg-type]
    argv = spec.argv(tmp_path / "m.sock")
    assert argv.count("--rpc") == 1 and "-ts" not in argv and argv.count("--tensor-split") == 1
    assert argv[argv.index("--rpc") + 1] == "127.0.0.1:1,127.0.0.1:2"
    assert argv[argv.index("--tensor-split") + 1] == "0.25,0.75"
    assert argv[argv.index("--n-gpu-layers") + 1] == str(ALL_LAYERS) and argv[-2:] == ["--temp", "0.2"]


def test_configure_show_says_where_the_pool_comes_from() -> None:
    pool = Pool(parse_endpoints("10.0.0.1:50052@2G"), RUNNER_WIDE)
    assert pool_text(pool.info(), None) == "10.0.0.1:50052@2.00GB (runner-wide (DOCKER_MODEL_RPC))"
    flagged = Pool(TWO, RUNTIME_FLAG, (1, 3))
    assert pool_text(flagged.info(), None) == "127.0.0.1:1,127.0.0.1:2@100.00MB split 1,3 (runtime flag)"
    assert pool_text(None, "none") == "none (set with configure)"
    assert pool_text(None, None) == "-"


def test_pool_errors_have_their_http_status_and_a_busy_server_a_retry_after() -> None:
    busy = response_for(EndpointBusy(busy_message("10.0.0.1:50052", "ai/big")))
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
    assert b"10.0.0.1:50052 is in use by model ai/big" in busy.body
    assert response_for(EndpointFailed("RPC server 10.0.0.1:50052 is unreachable")).status_code == 502
    assert response_for(PoolMisconfigured("--tensor-split gives 2 shares")).status_code == 409


# The scheduler against real RPC servers, with stand-in workers.


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RpcServer, RpcServer]]:
    """Two real servers on loopback, offering 512 MB and 1 GB."""
    work = tmp_path_factory.mktemp("rpc")
    with (
        rpc_server(work, port=free_port(), options=("--mem", "512M")) as first,
        rpc_server(work, port=free_port(), options=("--mem", "1G")) as second,
    ):
        yield first, second


@dataclass
class ReportingWorker(StandInWorker):
    """A stand-in worker that reports, as a worker on a pool does, what it allocated on each server."""

    async def health(self, timeout: float) -> dict:
        held = {"model_bytes": 1000, "context_bytes": 200, "compute_bytes": 30}
        return {"status": "ok", "progress": 0, "rpc": [{"endpoint": e, **held} for e in self.spec.rpc]}


class ReportingLauncher(StandInLauncher):
    async def __call__(self, spec: WorkerSpec, socket_path: Path, log_path: Path) -> ReportingWorker:
        worker = ReportingWorker(spec)
        self.started.append(worker)
        return worker


def pooled(store: Store, tmp_path: Path, found: dict[str, Model], pools: dict[str, str]) -> Scheduler:
    scheduler = scheduler_for(store, tmp_path, ReportingLauncher())
    for name, spec in pools.items():
        scheduler.settings.set(found[name].id, ModelSettings(rpc=spec))
    return scheduler


@contextmanager
def held_by_a_client(endpoint: Endpoint) -> Iterator[None]:
    """A client that said hello to the server and holds it, as a worker does: the server answers nobody else."""
    with socket.create_connection((endpoint.host, endpoint.port), timeout=5) as connection:
        connection.sendall(struct.pack("<BQ", CMD_HELLO, CONN_CAPS_SIZE) + bytes(CONN_CAPS_SIZE))
        (size,) = struct.unpack("<Q", connection.recv(8, socket.MSG_WAITALL))
        connection.recv(size, socket.MSG_WAITALL)
        yield


@pytest.mark.integration
def test_an_idle_holder_is_evicted_and_a_busy_one_is_a_503_naming_it(
    servers: tuple[RpcServer, RpcServer], models: tuple[Store, dict[str, Model]], tmp_path: Path
) -> None:
    store, found = models
    shared = servers[0].endpoint.address
    scheduler = pooled(store, tmp_path, found, {"a": shared, "b": shared})

    async def scenario() -> None:
        holding = await scheduler.acquire(found["a"], "a")
        with pytest.raises(EndpointBusy, match=f"RPC server {shared} is in use by model a"):
            await scheduler.acquire(found["b"], "b")  # a is answering a request: never evicted
        scheduler.release(holding)
        scheduler.release(await scheduler.acquire(found["b"], "b"))  # a is idle: evicted
        assert [m.name for m in scheduler.running()] == ["b"] and holding.worker.stopped  # type: ignore[attr-defined]
        assert scheduler.leases() == {shared: (found["b"].id, "b")}

    asyncio.run(scenario())


@pytest.mark.integration
def test_a_holder_whose_worker_died_releases_its_servers(
    servers: tuple[RpcServer, RpcServer], models: tuple[Store, dict[str, Model]], tmp_path: Path
) -> None:
    store, found = models
    shared = servers[0].endpoint.address
    scheduler = pooled(store, tmp_path, found, {"a": shared, "b": shared})

    async def scenario() -> None:
        holding = await scheduler.acquire(found["a"], "a")
        holding.worker.alive = False  # type: ignore[misc]
        assert scheduler.leases() == {}
        scheduler.release(await scheduler.acquire(found["b"], "b"))
        assert not holding.worker.stopped  # type: ignore[attr-defined]  # not evicted: it was gone already

    asyncio.run(scenario())


@pytest.mark.integration
def test_a_leased_server_is_reported_from_its_holder_and_never_probed(
    servers: tuple[RpcServer, RpcServer], models: tuple[Store, dict[str, Model]], tmp_path: Path
) -> None:
    store, found = models
    first, second = (server.endpoint for server in servers)
    scheduler = pooled(store, tmp_path, found, {"a": f"{first.address},{second.address}@256M"})
    scheduler.rpc_servers = (second,)
    app = Starlette(routes=rpc_routes.routes)
    app.state.runner = SimpleNamespace(scheduler=scheduler, store=store, settings=scheduler.settings)

    async def load() -> None:
        scheduler.release(await scheduler.acquire(found["a"], "a"))

    asyncio.run(load())
    loaded = scheduler.running()[0]
    with held_by_a_client(first), held_by_a_client(second):  # as its worker would: a probe would get no answer
        shares = asyncio.run(rpc_routes.rpc_shares(loaded))
        listed = TestClient(app).get("/engines/rpc").json()
    assert [s["endpoint"] for s in shares] == [first.address, second.address]
    assert [s["offer"] for s in shares] == [512 * 10**6, 256 * 10**6]
    assert shares[0]["fraction"] == pytest.approx(2 / 3) and shares[0]["estimated"] > 0
    assert all(s["measured"] == 1230 for s in shares)
    by_endpoint = {entry["endpoint"]: entry for entry in listed}
    assert by_endpoint[first.address]["used_by"] == ["ai/a:latest"]
    assert by_endpoint[second.address]["used_by"] == ["runner-wide", "ai/a:latest"]
    assert all(e["leased_to"] == "a" and e["reachable"] and e["protocol"] == "7.0.0" for e in listed), listed
    assert by_endpoint[second.address]["offer"] == 256 * 10**6 and by_endpoint[second.address]["measured"] == 1230


@pytest.mark.integration
def test_probe_errors_are_clear_load_errors_and_too_small_offers_a_refusal_with_the_numbers(
    servers: tuple[RpcServer, RpcServer], models: tuple[Store, dict[str, Model]], tmp_path: Path
) -> None:
    store, found = models
    first, second = (server.endpoint for server in servers)
    closed = f"127.0.0.1:{free_port()}"
    scheduler = pooled(store, tmp_path, found, {"a": closed, "b": second.address, "c": f"{first.address}@1K"})

    async def load(name: str) -> None:
        scheduler.release(await scheduler.acquire(found[name], name))

    with pytest.raises(EndpointFailed, match=f"RPC server {closed} is unreachable"):
        asyncio.run(load("a"))
    with held_by_a_client(second), pytest.raises(EndpointBusy, match=f"RPC server {second.address} accepted"):
        asyncio.run(load("b"))
    with pytest.raises(ModelDoesNotFit, match=f"{first.address} offers 1.00kB for 100% of the layers"):
        asyncio.run(load("c"))
    asyncio.run(load("b"))  # the other client gone, it loads
    assert [m.name for m in scheduler.running()] == ["b"]


# Through the docker CLI and a real runner whose runner-wide pool names a closed port.


@pytest.mark.integration
def test_configure_rpc_through_the_cli_and_a_closed_port_refused_with_the_runner_up(
    installed_plugin: Path, tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_RPC=closed)
    cli = DockerCLI(installed_plugin, env.variables())
    try:
        assert cli.run("model", "package", "--gguf", str(smollm2_gguf), "ai/smollm2").returncode == 0
        shown = cli.run("model", "configure", "show", "ai/smollm2").stdout
        assert f"{closed} (runner-wide (DOCKER_MODEL_RPC))" in shown and "is unreachable" in shown
        line = one_line_error(cli.run("model", "run", "ai/smollm2", "Hi"))
        assert f"RPC server {closed} is unreachable" in line and "docker model rpc-server" in line
        status = cli.run("model", "status")
        assert status.returncode == 0 and f"{closed}   runner-wide" in status.stdout, status.stdout
        line = one_line_error(cli.run("model", "configure", "ai/smollm2", "--", "--rpc", closed, "-ts", "1,3"))
        assert "--tensor-split gives 2 shares for the 1 RPC servers" in line
        assert cli.run("model", "configure", "--rpc", "none", "ai/smollm2").returncode == 0  # loads here
        assert "none (set with configure)" in cli.run("model", "configure", "show", "ai/smollm2").stdout
        line = one_line_error(cli.run("model", "configure", "--rpc", f"{closed}@1G", "ai/smollm2"))
        assert f"RPC server {closed} is unreachable" in line
        assert "none (set with configure)" in cli.run("model", "configure", "show", "ai/smollm2").stdout
    finally:
        env.stop()
