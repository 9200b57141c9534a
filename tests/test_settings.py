from __future__ import annotations

import os
import subprocess
import sys

import pytest

from docker_model import settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MODEL_RUNNER_HOST",
        "MODEL_RUNNER_PORT",
        "DOCKER_MODEL_MAX_LOADED_MODELS",
        "DOCKER_MODEL_NUM_PARALLEL",
    ):
        monkeypatch.delenv(name, raising=False)
    assert settings.runner_host() == "http://127.0.0.1:12434"
    assert (settings.max_loaded_models(), settings.parallel_requests()) == (2, 4)


def test_port_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_RUNNER_HOST", raising=False)
    monkeypatch.setenv("MODEL_RUNNER_PORT", "13000")
    assert settings.runner_host() == "http://127.0.0.1:13000"
    monkeypatch.setenv("MODEL_RUNNER_HOST", "gpu-box:12434/")
    assert settings.runner_host() == "http://gpu-box:12434"


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_a_bad_port_is_one_line_naming_the_variable(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "docker_model.cli", "status"],
        env={**os.environ, "MODEL_RUNNER_PORT": value, "MODEL_RUNNER_HOST": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: MODEL_RUNNER_PORT must be")
    assert result.stderr.strip().endswith("fix or unset it") and len(result.stderr.strip().splitlines()) == 1


def test_every_environment_variable_is_documented_in_the_readme() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    source = "".join(path.read_text() for path in (root / "docker_model").rglob("*.py"))
    names = set(re.findall(r"environ(?:\.get)?\(\s*\"([A-Z_]+)\"", source)) | set(
        re.findall(r"_(?:int|url)_variable\(\"([A-Z_]+)\"", source)
    )
    assert {"MODEL_RUNNER_BIND", "DOCKER_MODEL_REQUIRE_TOKEN", "DMR_ORIGINS"} <= names
    readme = (root / "README.md").read_text()
    settings_table = readme[readme.index("### Settings") :]
    missing = sorted(name for name in names if f"`{name}`" not in settings_table)
    assert not missing, f"add these to README's Settings table: {missing}"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODEL_RUNNER_BIND", "docker0", "MODEL_RUNNER_BIND must be an IP address"),
        ("DOCKER_MODEL_REQUIRE_TOKEN", "some", "DOCKER_MODEL_REQUIRE_TOKEN must be none, management or all"),
        ("DOCKER_MODEL_TLS_CERT", "/tmp/cert.pem", "set both DOCKER_MODEL_TLS_CERT and DOCKER_MODEL_TLS_KEY"),
    ],
)
def test_a_bad_network_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(settings.SettingsError, match=message):
        settings.listen_address()
        settings.token_scope()
        settings.tls_files()


def test_network_settings_read_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODEL_RUNNER_BIND", "DOCKER_MODEL_REQUIRE_TOKEN", "DOCKER_MODEL_BRIDGE", "MODEL_RUNNER_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert (settings.listen_address(), settings.token_scope(), settings.bridge_interface()) == (None, None, "docker0")
    monkeypatch.setenv("MODEL_RUNNER_BIND", "[::]")
    monkeypatch.setenv("DOCKER_MODEL_REQUIRE_TOKEN", "ALL")
    monkeypatch.setenv("DOCKER_MODEL_BRIDGE", "none")
    assert (settings.listen_address(), settings.token_scope(), settings.bridge_interface()) == ("::", "all", None)
    monkeypatch.setenv("DOCKER_MODEL_TLS_CERT", "/c.pem")
    monkeypatch.setenv("DOCKER_MODEL_TLS_KEY", "/k.pem")
    assert settings.runner_host().startswith("https://127.0.0.1:")
