"""What a new user hits in the first hour, through the real docker CLI and a runner it starts: bad input
is one line that names the problem and the fix, models are named as Docker names images, and nothing
is silently dropped. Tiny GGUF models: no inference here."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.disks import tmpfs
from tests.fixtures.docker_cli import REPO_ROOT, DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture(scope="module")
def tiny_models(model_cli: DockerCLI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three tiny models by name, and their IDs."""
    workdir = tmp_path_factory.mktemp("tiny")
    ids = {}
    for seed, name in enumerate(("alpha", "beta", "gamma")):
        result = model_cli.run("model", "package", "--gguf", str(write_gguf(workdir / f"{name}.gguf", seed)), name)
        assert result.returncode == 0, result.stderr
        ids[name] = json.loads(model_cli.run("model", "inspect", name).stdout)["id"]
    return ids


@pytest.mark.parametrize(
    ("variable", "value"), [("MODEL_RUNNER_HOST", "http://[::1"), ("MODEL_RUNNER_HOST", "http://127.0.0.1:99999")]
)
@pytest.mark.parametrize("command", [["list"], ["status"]])
def test_a_bad_runner_address_is_one_line(
    installed_plugin: Path, variable: str, value: str, command: list[str]
) -> None:
    line = one_line_error(DockerCLI(installed_plugin, {variable: value}).run("model", *command))
    assert f"{variable} is not a valid URL" in line


@pytest.mark.parametrize("target", ["Bad Name!", "bad:tag:x", ""])
def test_package_with_an_invalid_target_is_one_line(model_cli: DockerCLI, tmp_path: Path, target: str) -> None:
    gguf = write_gguf(tmp_path / "m.gguf")
    assert "invalid model reference" in one_line_error(model_cli.run("model", "package", "--gguf", str(gguf), target))


def test_package_checks_the_template_and_projector(model_cli: DockerCLI, tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "m.gguf")
    template = tmp_path / "t.jinja"
    template.write_bytes(b"{{ messages }} caf\xe9")
    notes = tmp_path / "notes.txt"
    notes.write_text("text")
    bad_template = model_cli.run("model", "package", "--gguf", str(gguf), "--chat-template", str(template), "x")
    assert "is not UTF-8 text" in one_line_error(bad_template)
    bad_projector = model_cli.run("model", "package", "--gguf", str(gguf), "--mmproj", str(notes), "x")
    assert "is not a GGUF file" in one_line_error(bad_projector)


def test_uppercase_names_are_refused_not_lowercased(model_cli: DockerCLI, tiny_models: dict[str, str]) -> None:
    line = one_line_error(model_cli.run("model", "inspect", "Alpha"))
    assert "must be lowercase: use 'alpha'" in line


def test_any_unique_id_prefix_names_a_model(model_cli: DockerCLI, tiny_models: dict[str, str]) -> None:
    ids = [model_id.removeprefix("sha256:") for model_id in tiny_models.values()]
    for name, model_id in tiny_models.items():
        digits = model_id.removeprefix("sha256:")
        unique = next(n for n in range(1, 65) if sum(other.startswith(digits[:n]) for other in ids) == 1)
        inspected = model_cli.run("model", "inspect", digits[: max(unique, 4)])
        assert inspected.returncode == 0, inspected.stderr
        assert json.loads(inspected.stdout)["tags"] == [f"docker.io/ai/{name}:latest"]
    tagged = model_cli.run("model", "tag", ids[0][:6], "alpha-copy")
    assert tagged.returncode == 0, tagged.stderr
    removed = model_cli.run("model", "rm", "alpha-copy")
    assert removed.stdout.strip() == "Untagged: ai/alpha-copy:latest"


def test_an_ambiguous_prefix_lists_the_candidates(model_cli: DockerCLI, tmp_path: Path) -> None:
    ids: dict[str, str] = {}
    seed = 100
    while True:  # models until two IDs share their first digit (at most 17, by pigeonhole)
        name = f"p{seed}"
        model_cli.run("model", "package", "--gguf", str(write_gguf(tmp_path / f"{name}.gguf", seed)), name)
        ids[name] = json.loads(model_cli.run("model", "inspect", name).stdout)["id"][7:]
        shared = [n for n in ids if ids[n][0] == ids[name][0]]
        if len(shared) > 1:
            break
        seed += 1
    line = one_line_error(model_cli.run("model", "rm", ids[name][0]))
    assert f"model ID prefix '{ids[name][0]}' is ambiguous" in line
    assert all(ids[n][:12] in line and n in line for n in shared)
    for n in ids:
        model_cli.run("model", "rm", n)


@pytest.mark.parametrize(
    ("command", "advice"),
    [
        (["rm", "nothere"], "'docker model list' shows the models you have"),
        (["inspect", "nothere"], "'docker model list' shows the models you have"),
        (["push", "nothere"], "push sends a model you have"),
    ],
)
def test_not_found_advice_fits_the_command(model_cli: DockerCLI, command: list[str], advice: str) -> None:
    line = one_line_error(model_cli.run("model", *command))
    assert line.startswith(f"Error: model not found: nothere; {advice}")
    assert "pull" not in line


def test_an_unreachable_registry_is_one_line_and_a_near_name_is_suggested(
    model_cli: DockerCLI, tiny_models: dict[str, str]
) -> None:
    model_cli.run("model", "tag", "alpha", "127.0.0.1:1/ai/alpha:v1")
    line = one_line_error(model_cli.run("model", "pull", "127.0.0.1:1/ai/alpah:v1"))
    assert line.startswith("Error: cannot reach registry 127.0.0.1:1: connection refused; check the network")
    assert line.endswith("did you mean 127.0.0.1:1/ai/alpha:v1?")
    assert "HTTPConnectionPool" not in line and "Max retries" not in line
    model_cli.run("model", "rm", "127.0.0.1:1/ai/alpha:v1")


def test_pull_of_an_empty_name_says_so(model_cli: DockerCLI) -> None:
    assert one_line_error(model_cli.run("model", "pull", "")) == "Error: invalid model reference '': it is empty"


def test_non_utf8_input_is_named(model_cli: DockerCLI) -> None:
    piped = subprocess.run(
        ["docker", "model", "run", "alpha", "Summarize:"],
        input=b"caf\xe9 au lait",
        env=model_cli.environment(),
        capture_output=True,
        timeout=60,
    )
    assert piped.returncode == 1
    assert b"standard input is not UTF-8 text (byte 3 is 0xe9)" in piped.stderr
    argument = subprocess.run(
        [b"docker", b"model", b"run", b"alpha", b"\xff\xfe"], env=model_cli.environment(), capture_output=True
    )
    assert argument.returncode == 1
    assert b"the prompt is not UTF-8 text" in argument.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["run", "-d", "alpha", "hello"], "--detach only loads the model"),
        (["list", "--json", "-q"], "give only one"),
    ],
)
def test_options_that_cannot_go_together_are_refused(model_cli: DockerCLI, args: list[str], problem: str) -> None:
    result = model_cli.run("model", *args)
    assert result.returncode == 2
    assert problem in result.stderr


def test_docker_model_alone_prints_help_and_succeeds(model_cli: DockerCLI) -> None:
    result = model_cli.run("model")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: docker model") and "Commands:" in result.stdout


def test_help_texts_read_whole(model_cli: DockerCLI) -> None:
    configure = model_cli.run("model", "configure", "--help").stdout
    assert "docker model configure --context-size 8192 ai/smollm2 -- --temp 0.2" in configure
    install = subprocess.run(["sh", str(REPO_ROOT / "install.sh"), "--help"], capture_output=True, text=True)
    assert install.returncode == 0
    assert install.stdout.strip().splitlines()[-1].endswith("overrides the virtualenv's location.")


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--temp"], "runtime flag --temp needs a value"),
        (["--threads", "0"], "runtime flag --threads needs a whole number at least 1, not '0'"),
        (["--top-p", "2"], "runtime flag --top-p needs a number from 0 to 1, not '2'"),
    ],
)
def test_configure_refuses_flags_the_engine_would_refuse_and_keeps_the_old_ones(
    model_cli: DockerCLI, runner_env: RunnerEnv, tiny_models: dict[str, str], flags: list[str], problem: str
) -> None:
    import requests

    def settings_of(name: str) -> dict:
        entries = requests.get(f"{runner_env.base_url}/engines/_configure", timeout=10).json()
        return next(entry for entry in entries if entry["ModelID"] == tiny_models[name])

    before = settings_of("beta")
    assert problem in one_line_error(model_cli.run("model", "configure", "beta", "--", *flags))
    assert settings_of("beta") == before


def test_a_context_beyond_the_trained_length_is_refused(model_cli: DockerCLI, tiny_models: dict[str, str]) -> None:
    line = one_line_error(model_cli.run("model", "configure", "--context-size", "100000", "gamma"))
    assert "100000 tokens is more than the 2048 gamma was trained for" in line


def test_status_shows_the_store_and_a_stale_models_path_is_named(
    model_cli: DockerCLI, runner_env: RunnerEnv, tiny_models: dict[str, str], tmp_path: Path
) -> None:
    status = model_cli.run("model", "status")
    assert f"Model store: {runner_env.models_path}" in status.stdout
    elsewhere = DockerCLI(model_cli.docker_config, {**model_cli.env, "MODELS_PATH": str(tmp_path / "other")})
    listed = elsewhere.run("model", "list")
    assert listed.returncode == 0
    assert f"MODELS_PATH is {tmp_path / 'other'}, but the running runner uses the store {runner_env.models_path}" in (
        listed.stderr
    )


def test_status_when_down_says_how_to_start(installed_plugin: Path, tmp_path: Path) -> None:
    down = DockerCLI(installed_plugin, {"MODEL_RUNNER_HOST": "http://127.0.0.1:1"}).run("model", "status")
    assert (down.returncode, down.stdout.strip()) == (1, "Docker Model Runner is not running")
    assert "docker model start-runner" in down.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB disk, to fill."""
    with tmpfs(tmp_path / "small", "1m") as mount_point:
        yield mount_point


def test_a_full_state_directory_is_one_line_and_leaves_no_runner(
    installed_plugin: Path, small_disk: Path, tmp_path: Path
) -> None:
    (small_disk / "state").mkdir()
    with contextlib.suppress(OSError), open(small_disk / "filler", "wb", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 4096)
    from tests.fixtures.registry import free_port

    env = RunnerEnv(free_port(), tmp_path / "models", small_disk / "state")
    line = one_line_error(DockerCLI(installed_plugin, env.variables()).run("model", "list"))
    assert f"cannot write the runner's state in {small_disk / 'state'}" in line
    assert "DOCKER_MODEL_STATE_DIR" in line
    assert (
        subprocess.run(["pgrep", "-f", f"docker_model.runner --port {env.port}"], capture_output=True).returncode == 1
    )


def test_a_full_model_store_names_the_store_and_the_sizes(
    installed_plugin: Path, small_disk: Path, tmp_path: Path
) -> None:
    from tests.fixtures.registry import free_port

    port = free_port()
    env = RunnerEnv(port, small_disk / "models", tmp_path / "state")
    try:
        gguf = write_gguf(tmp_path / "big.gguf", padding_bytes=2 * 1024 * 1024)
        result = DockerCLI(installed_plugin, env.variables()).run("model", "package", "--gguf", str(gguf), "big")
        line = one_line_error(result)
        assert f"no space left for this model in the store {small_disk / 'models'}" in line
        assert "free," in line and "needed" in line
        assert "not running" not in line
    finally:
        env.stop()


def test_a_read_only_home_is_one_line(installed_plugin: Path, tmp_path: Path) -> None:
    from tests.fixtures.registry import free_port

    with tmpfs(tmp_path / "home", "1m", "ro") as home:
        port = str(free_port())
        variables = {"HOME": str(home), "XDG_STATE_HOME": "", "XDG_DATA_HOME": "", "MODEL_RUNNER_PORT": port}
        cli = DockerCLI(installed_plugin, variables)
        environment = {k: v for k, v in cli.environment().items() if v != "" and k not in ("MODELS_PATH",)}
        environment.pop("DOCKER_MODEL_STATE_DIR", None)
        result = subprocess.run(
            ["docker", "model", "list"], env=environment, capture_output=True, text=True, timeout=60
        )
        line = one_line_error(result)
        assert "cannot write the runner's state in" in line and "Read-only file system" in line


def test_push_progress_without_a_terminal_prints_each_line_once_and_names_layers(
    model_cli: DockerCLI, tiny_models: dict[str, str], tmp_path: Path
) -> None:
    from tests.fixtures.registry import start_registry

    registry = start_registry(tmp_path / "registry")
    try:
        target = f"{registry.host}/ai/alpha:v1"
        model_cli.run("model", "tag", "alpha", target)
        pushed = model_cli.run("model", "push", target)
        assert pushed.returncode == 0, pushed.stderr
        lines = pushed.stdout.strip().splitlines()
        assert len(lines) == len(set(lines)), pushed.stdout
        layer_lines = [line for line in lines if line.endswith(": Pushed")]
        assert len(layer_lines) == 2  # the GGUF and the config, each named by its digest
        assert all(len(line.split(":")[0]) == 12 for line in layer_lines)
        model_cli.run("model", "rm", target)
    finally:
        registry.stop()


def test_a_read_only_model_store_names_the_store(installed_plugin: Path, tmp_path: Path) -> None:
    from tests.fixtures.registry import free_port

    with tmpfs(tmp_path / "store", "1m", "ro") as store:
        env = RunnerEnv(free_port(), store / "models", tmp_path / "state")
        try:
            gguf = write_gguf(tmp_path / "m.gguf")
            cli = DockerCLI(installed_plugin, env.variables())
            line = one_line_error(cli.run("model", "package", "--gguf", str(gguf), "m"))
            assert f"cannot write {store / 'models'}: Read-only file system" in line
        finally:
            env.stop()
