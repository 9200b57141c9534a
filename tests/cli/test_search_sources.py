"""`docker model search` in-process against the fake Docker Hub and Hugging Face of `test_search.py`: how each
source's answer is read (`httpio.get_json`: bounded, redirects on the same server only) and every way one fails
is a one-line warning naming it, with the other source's results still shown."""

from __future__ import annotations

import json

import pytest
import requests
from click.testing import CliRunner, Result

from docker_model.cli.main import cli
from docker_model.distribution.registry.httpio import RedirectError, redirect_target
from tests.fixtures.search_services import HF_MODELS, FakeService, hugging_face, serving

HF_NAMES = [f"hf.co/{m['id']}" for m in HF_MODELS]


def search(hub: FakeService, hf: FakeService, *args: str) -> Result:
    env = {"DOCKER_MODEL_HUB_URL": hub.url, "HF_ENDPOINT": hf.url}
    return CliRunner().invoke(cli, ["search", *args], env=env)


def names(result: Result) -> list[str]:
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_a_reason_phrase_reaches_the_terminal_without_its_control_sequences(hub: FakeService, hf: FakeService) -> None:
    hub.answer = lambda path, query: (503, b"{}")
    hub.reason = "\x1b]0;PWNED\x07Down\x1b[2J"
    result = search(hub, hf, "llama")
    assert result.exit_code == 0, result.output
    assert result.stderr == "Warning: failed to search Docker Hub: Docker Hub answered HTTP 503 Down\n"
    assert names(result) == HF_NAMES


def test_a_redirect_is_followed_on_the_same_server_only(hub: FakeService, hf: FakeService) -> None:
    listing, asked = hub.answer, []

    def moved_once(path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        asked.append(path)
        return (301, b"") if len(asked) == 1 else listing(path, query)

    hub.answer, hub.headers = moved_once, {"Location": "/v2/repositories/ai/?page=1&page_size=100"}
    followed = search(hub, hf, "--source", "hub", "--json", "qwen")
    assert followed.exit_code == 0, followed.output
    assert [r["Name"] for r in json.loads(followed.stdout)] == ["ai/qwen3"]  # on the page after the redirect's

    hub.asked.clear()
    hub.answer = lambda path, query: (301, b"")
    hub.headers = {"Location": "/v2/repositories/ai/?again"}  # a loop on the same server
    looped = search(hub, hf, "--source", "hub")
    assert looped.stderr == "Error: search failed: Docker Hub: Docker Hub redirected more than 5 times: not followed\n"
    assert len(hub.asked) == 6

    with serving(hugging_face) as elsewhere:
        hub.headers = {"Location": f"{elsewhere.url}/v2/repositories/ai/"}  # another port: another server
        refused = search(hub, hf, "--source", "hub")
        assert refused.exit_code == 1
        assert refused.stderr == (
            f"Error: search failed: Docker Hub: Docker Hub redirected to another server ({elsewhere.url}): "
            "not followed\n"
        )
        assert elsewhere.asked == []


def test_a_redirect_from_https_to_http_is_not_followed() -> None:
    answer = requests.Response()
    answer.status_code, answer.url = 302, "https://hub.example/v2/repositories/ai/"
    answer.headers["Location"] = "http://hub.example/v2/repositories/ai/"
    with pytest.raises(RedirectError, match=r"^redirected to another server \(http://hub.example:80\)"):
        redirect_target(answer)
    answer.headers["Location"] = "/v2/repositories/ai/?page=2"
    assert redirect_target(answer) == "https://hub.example/v2/repositories/ai/?page=2"


def test_a_small_limit_still_looks_at_whole_pages(hub: FakeService, hf: FakeService) -> None:
    found = search(hub, hf, "-n", "1", "--source", "hub", "--json", "smollm2")  # on the second page
    assert found.exit_code == 0, found.output
    assert [r["Name"] for r in json.loads(found.stdout)] == ["ai/smollm2"]
    assert [query["page_size"] for _, query in hub.asked] == [["100"], ["100"]]
    hub.asked.clear()
    first = search(hub, hf, "-n", "1", "--source", "hub", "--json", "llama")
    assert [r["Name"] for r in json.loads(first.stdout)] == ["ai/llama3.2"]
    assert len(hub.asked) == 1  # found on the first page: the second is not asked for


def test_an_answer_cut_short_is_a_warning_and_the_other_source_still_shows(hub: FakeService, hf: FakeService) -> None:
    hub.cut = 10
    result = search(hub, hf, "llama")
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "Warning: failed to search Docker Hub: Docker Hub's answer was cut short (ProtocolError): try again\n"
    )
    assert names(result) == HF_NAMES
