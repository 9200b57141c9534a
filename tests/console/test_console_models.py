"""The console's Models view in a real browser: it lists what the store holds, including models pulled before the
page opened; a pull through a slow link shows its progress as it goes and ends with the model listed; removing
asks first, naming the exact reference and the model's ID, then removes that reference and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from docker_model.distribution import RegistryClient, Store, package
from tests.console.conftest import OpenConsole, changes, model_names, named, record_changes, row
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer
from tests.fixtures.runner import RunnerEnv
from tests.fixtures.slow_proxy import slow_proxy
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

MIB = 1 << 20


@pytest.fixture(scope="module")
def pushed(
    module_registry: RegistryServer, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """In the registry: SmolLM2 as `ai/pulled:v1`, and a 5 MiB model as `ai/slow:v1` (seconds through the slow
    link); their references by name."""
    store = Store(tmp_path_factory.mktemp("elsewhere"))
    small = write_gguf(tmp_path_factory.mktemp("slow") / "slow.gguf", seed=7, padding_bytes=5 * MIB)
    references = {"pulled": f"{module_registry.host}/ai/pulled:v1", "slow": f"{module_registry.host}/ai/slow:v1"}
    for name, gguf in (("pulled", smollm2_gguf), ("slow", small)):
        store.write_artifact(package(gguf), [references[name]])
        RegistryClient(store).push(references[name])
    yield references


def test_the_table_lists_models_pulled_before_the_page_opened(
    open_console: OpenConsole, console_runner: RunnerEnv, pushed: dict[str, str]
) -> None:
    pulled = requests.post(f"{console_runner.base_url}/models/create", json={"from": pushed["pulled"]}, timeout=300)
    assert pulled.status_code == 200, pulled.text
    console = open_console()
    page = console.open("models")
    table = page.get_by_role("table", name="Models")
    for header in ("Name", "Parameters", "Quantization", "Size", "Context", "Capabilities", "Loaded"):
        assert table.get_by_role("columnheader", name=header).count() == 1, header
    listed = row(page, "Models", "ai/pulled")
    listed.wait_for()
    assert "134.52M" in listed.inner_text() and "Q4_1" in listed.inner_text()
    assert row(page, "Models", "smollm2").count() == 1


def test_a_pull_through_a_slow_link_shows_its_progress_then_lists_the_model(
    open_console: OpenConsole, console_runner: RunnerEnv, module_registry: RegistryServer, pushed: dict[str, str]
) -> None:
    with slow_proxy(module_registry.host, bytes_per_second=MIB) as slow_host:
        reference = pushed["slow"].replace(module_registry.host, slow_host)
        console = open_console()
        page = console.open("models")
        record_changes(page, "progress")
        page.get_by_role("textbox", name="Model to pull").fill(reference)
        page.get_by_role("button", name="Pull", exact=True).click()
        region = page.get_by_role("region", name="Pull progress")
        region.get_by_role("progressbar").first.wait_for()
        row(page, "Models", "ai/slow").wait_for(timeout=60_000)
    values = [float(value) for bars in changes(page) for value in bars if value]
    assert values, "no progress bar had a value"
    intermediate = {value for value in values if 0 < value < max(values)}
    assert len(intermediate) >= 3, f"progress values seen: {values}"
    assert f"{slow_host}/ai/slow:v1" in model_names(console_runner.base_url)
    assert not console.errors


def test_remove_asks_then_removes_exactly_that_reference(open_console: OpenConsole, console_runner: RunnerEnv) -> None:
    base = console_runner.base_url
    tagged = requests.post(f"{base}/models/ai/smollm2/tag", params={"repo": "ai/spare", "tag": "latest"}, timeout=30)
    assert tagged.status_code == 201, tagged.text
    model_id = requests.get(f"{base}/models/ai/smollm2", timeout=30).json()["id"]
    before = model_names(base)
    console = open_console()
    page = console.open("models")
    remove = page.get_by_role("button", name=named("Remove", "ai/spare"))
    remove.click()
    dialog = page.get_by_role("dialog", name="Remove model")
    dialog.wait_for()
    text = dialog.inner_text()
    assert "ai/spare" in text and model_id.removeprefix("sha256:")[:12] in text, text
    assert "tag" in text.lower(), text  # the model keeps its other tag: this removes a tag, not the model
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert model_names(base) == before  # asked, nothing removed
    remove.click()
    dialog.get_by_role("button", name="Remove", exact=True).click()
    assert wait_until(lambda: model_names(base) == {name for name in before if "ai/spare" not in name})
    assert requests.get(f"{base}/models/ai/smollm2", timeout=30).json()["id"] == model_id
    row(page, "Models", "spare").wait_for(state="detached")
    assert page.get_by_role("button", name="Purge").count() == 0
    assert not console.errors
