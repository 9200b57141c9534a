"""Finding models to pull: Docker Hub's `ai/` namespace and Hugging Face's GGUF repositories, asked through
their public web APIs, as Docker Model Runner's `search` asks them.

Docker Hub cannot search one namespace by a term: its repositories are listed by popularity, a page at a
time, and filtered here by name and description. Hugging Face searches itself, limited to repositories
with GGUF files (what llama.cpp runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from docker_model.distribution.errors import AnswerTooLargeError
from docker_model.distribution.registry import httpio
from docker_model.distribution.registry.httpio import NotJSONError, RedirectError, StatusError, TransientError, origin

DOCKER_HUB = "Docker Hub"  # the source names Docker Model Runner shows and writes in its JSON
HUGGING_FACE = "HuggingFace"
NAMESPACE = "ai"
PAGE_SIZE = 100  # Docker Hub's largest page
MAX_PAGES = 20  # the `ai/` namespace holds a few hundred repositories; a listing without end is not followed
MAX_ANSWER_BYTES = 8 << 20
DESCRIPTION_LENGTH = 50
UNKNOWN_BACKEND = "unknown"  # Docker Model Runner's word when it did not look (here: a Docker Hub model's format)


@dataclass(frozen=True)
class SearchResult:
    name: str  # `ai/smollm2`, or a Hugging Face repository `org/name` (pulled as `hf.co/org/name`)
    description: str
    downloads: int
    stars: int
    source: str
    official: bool
    updated_at: str
    backend: str

    def as_json(self) -> dict[str, object]:
        """Docker Model Runner's JSON for a result (its Go field names), with `Size` 0: not looked up."""
        return {
            "Name": self.name,
            "Description": self.description,
            "Downloads": self.downloads,
            "Stars": self.stars,
            "Source": self.source,
            "Official": self.official,
            "UpdatedAt": self.updated_at,
            "Backend": self.backend,
            "Size": 0,
        }


class SearchError(Exception):
    """A source could not be searched; the message says which and why, in one line."""


def shortened(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DESCRIPTION_LENGTH else text[: DESCRIPTION_LENGTH - 3] + "..."


def number(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def get_json(session: requests.Session, url: str, source: str, params: dict[str, str] | None = None) -> Any:
    """The JSON answer of `source` at `url` (`httpio.get_json`: bounded, redirects on the same server only);
    every failure a SearchError naming `source`."""
    try:
        return httpio.get_json(session, url, f"{source}'s answer", MAX_ANSWER_BYTES, params)
    except StatusError as error:
        if error.status == 429:
            raise SearchError(f"{source} limits how often it is asked (HTTP 429): try again later") from None
        raise SearchError(f"{source} answered {error}") from None
    except RedirectError as error:
        raise SearchError(f"{source} {error}") from None
    except TransientError as error:
        cause = error.__cause__
        if isinstance(cause, (requests.ConnectionError, requests.Timeout)):
            raise SearchError(f"cannot reach {source} at {origin(url)[1]}: {type(cause).__name__}") from None
        raise SearchError(f"{source}'s answer was cut short ({type(cause).__name__}): try again") from None
    except requests.RequestException as error:  # a URL or header `requests` refuses
        raise SearchError(f"cannot ask {source}: {type(error).__name__}: {error}") from None
    except AnswerTooLargeError as error:
        raise SearchError(str(error)) from None
    except NotJSONError as error:
        raise SearchError(f"{source} sent an answer that is not JSON ({error.start!r})") from None


def search_docker_hub(session: requests.Session, base_url: str, query: str, limit: int) -> list[SearchResult]:
    """The `ai/` repositories whose name or description holds `query`, most pulled first."""
    url: str | None = f"{base_url}/v2/repositories/{NAMESPACE}/"
    # Whole pages whatever `limit`: the term is matched here, so a small page would look at few repositories.
    params: dict[str, str] | None = {"page_size": str(PAGE_SIZE), "ordering": "pull_count"}
    term = query.lower()
    found: list[SearchResult] = []
    for _ in range(MAX_PAGES):
        if url is None or len(found) >= limit:
            break
        page = get_json(session, url, DOCKER_HUB, params)
        repositories = page.get("results") if isinstance(page, dict) else None
        if not isinstance(repositories, list):
            raise SearchError(f"{DOCKER_HUB} sent an answer without a list of `results`")
        for repository in repositories:
            if not isinstance(repository, dict) or repository.get("is_private"):
                continue
            name, description = text(repository.get("name")), text(repository.get("description"))
            if not name or (term and term not in name.lower() and term not in description.lower()):
                continue
            namespace = text(repository.get("namespace")) or NAMESPACE
            found.append(
                SearchResult(
                    name=f"{namespace}/{name}",
                    description=shortened(description),
                    downloads=number(repository.get("pull_count")),
                    stars=number(repository.get("star_count")),
                    source=DOCKER_HUB,
                    official=namespace == NAMESPACE,
                    updated_at=text(repository.get("last_updated")),
                    backend=UNKNOWN_BACKEND,
                )
            )
        following = page.get("next")
        # The next page is followed on the same server only: the listing names it, and it could name any.
        url = following if isinstance(following, str) and origin(following) == origin(base_url) else None
        params = None  # the next page's URL carries them
    return found[:limit]


def hugging_face_description(model: dict[str, Any]) -> str:
    """What the model does (its pipeline tag) and the model it was quantized from, when its tags say."""
    parts = [text(model.get("pipeline_tag"))]
    tags = model.get("tags")
    tags = tags if isinstance(tags, list) else []
    base = next((tag.rsplit(":", 1)[1] for tag in tags if isinstance(tag, str) and tag.startswith("base_model:")), "")
    if base:
        parts.append(f"from {base}")
    return shortened(", ".join(part for part in parts if part) or "GGUF model")


def search_hugging_face(session: requests.Session, base_url: str, query: str, limit: int) -> list[SearchResult]:
    """Hugging Face repositories with GGUF files matching `query`, most downloaded first."""
    params = {"filter": "gguf", "sort": "downloads", "direction": "-1", "limit": str(min(limit, 1000))}
    if query:
        params["search"] = query
    models = get_json(session, f"{base_url}/api/models", HUGGING_FACE, params)
    if not isinstance(models, list):
        raise SearchError(f"{HUGGING_FACE} sent an answer that is not a list of models")
    found = []
    for model in models:
        if not isinstance(model, dict) or model.get("private"):
            continue
        name = text(model.get("modelId")) or text(model.get("id"))
        if not name:
            continue
        found.append(
            SearchResult(
                name=name,
                description=hugging_face_description(model),
                downloads=number(model.get("downloads")),
                stars=number(model.get("likes")),
                source=HUGGING_FACE,
                official=False,
                updated_at=text(model.get("createdAt")),
                backend="llama.cpp",  # the search asked for GGUF repositories only
            )
        )
    return found[:limit]
