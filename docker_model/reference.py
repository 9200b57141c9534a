"""Model references: parsing, normalisation and display.

`smollm2` means `docker.io/ai/smollm2:latest`; `localhost:5000/x:v1` names another registry; capitals in
a repository name are refused as Docker refuses them (tags keep their case);
`hf.co/org/repo:Q4_K_M` names a GGUF repository on Hugging Face, stored as Docker Model Runner stores it:
`huggingface.co/org/repo:Q4_K_M`. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
DEFAULT_NAMESPACE = "ai"
DEFAULT_TAG = "latest"
HUGGINGFACE_REGISTRY = "huggingface.co"
HUGGINGFACE_SHORT = "hf.co"  # what users type; stores written before DMR's migration hold it too

_REGISTRY_ALIASES = {
    "index.docker.io": DEFAULT_REGISTRY,
    "registry-1.docker.io": DEFAULT_REGISTRY,
    HUGGINGFACE_SHORT: HUGGINGFACE_REGISTRY,
}
_MAX_NAME_LENGTH = 255
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_REGISTRY = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_MODEL_ID = re.compile(r"(?:sha256:)?[0-9a-f]{12,64}")
_ID_PREFIX = re.compile(r"(?:sha256:)?[0-9a-f]{1,64}")


class InvalidReferenceError(ValueError):
    """A model reference that cannot be parsed; the message says what is wrong with it."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"invalid model reference {text!r}: {problem}")
        self.text = text
        self.problem = problem


@dataclass(frozen=True)
class Reference:
    """A normalised model reference: always has a registry and a repository, a tag and/or a digest."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def display(self) -> str:
        """The short form users see: no `docker.io/`, no `ai/`, no `:latest`."""
        text = str(self)
        if text.startswith(f"{DEFAULT_REGISTRY}/"):
            text = text[len(DEFAULT_REGISTRY) + 1 :]
            if text.startswith(f"{DEFAULT_NAMESPACE}/"):
                text = text[len(DEFAULT_NAMESPACE) + 1 :]
        suffix = f":{DEFAULT_TAG}"
        if text.endswith(suffix):
            text = text[: -len(suffix)]
        return text

    @property
    def is_huggingface(self) -> bool:
        return self.registry == HUGGINGFACE_REGISTRY


def parse_reference(text: str) -> Reference:
    """Parse and normalise a model reference; raise InvalidReferenceError naming the problem."""
    original = text
    text = text.strip()
    if not text:
        raise InvalidReferenceError(original, "it is empty")
    if any(c.isspace() for c in text):
        raise InvalidReferenceError(original, "it contains whitespace")

    name, digest = text, None
    if "@" in text:
        name, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidReferenceError(original, "a digest must be 'sha256:' followed by 64 lowercase hex digits")

    tag = None
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(
                original,
                f"tag {tag!r} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            )
    if not name:
        raise InvalidReferenceError(original, "the repository name is missing")

    registry, repository = _split_registry(_lowercase(name, original), original)
    if len(registry) + 1 + len(repository) > _MAX_NAME_LENGTH:
        raise InvalidReferenceError(original, f"the name is longer than {_MAX_NAME_LENGTH} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def _lowercase(name: str, original: str) -> str:
    """Registry hosts are case-insensitive, and so are Hugging Face repositories (lower-cased here); any
    other repository name with capitals is refused, as Docker refuses it, rather than changed silently."""
    first, sep, rest = name.partition("/")
    host = first.lower()
    if sep and ("." in host or ":" in host or host == "localhost"):
        if _REGISTRY_ALIASES.get(host, host) == HUGGINGFACE_REGISTRY:
            return name.lower()
        path = rest
    else:
        host, sep, path = "", "", name
    if path != path.lower():
        raise InvalidReferenceError(original, f"repository name {path!r} must be lowercase: use {path.lower()!r}")
    return f"{host}{sep}{path}"


def _split_registry(name: str, original: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _REGISTRY.fullmatch(first):
            raise InvalidReferenceError(original, f"registry {first!r} is not a valid host name or host:port")
        registry, path = _REGISTRY_ALIASES.get(first, first), rest
    else:
        registry, path = DEFAULT_REGISTRY, name
    components = path.split("/")
    for component in components:
        if not component:
            raise InvalidReferenceError(original, "the repository path has an empty component ('//' or a trailing '/')")
        if not _COMPONENT.fullmatch(component):
            raise InvalidReferenceError(
                original,
                f"path component {component!r} may only contain letters, digits and single '.', '_' or '-' "
                "separators between them",
            )
    if registry == DEFAULT_REGISTRY:
        if len(components) == 1:
            components.insert(0, DEFAULT_NAMESPACE)
        elif components[0] == "library":
            components[0] = DEFAULT_NAMESPACE
    elif registry == HUGGINGFACE_REGISTRY and len(components) != 2:
        raise InvalidReferenceError(original, "a Hugging Face reference must be hf.co/<organisation>/<repository>")
    return registry, "/".join(components)


def current_tag(stored: str) -> str:
    """A tag read from a store in today's form: `hf.co/...`, as this tool and older Docker Model Runners
    wrote Hugging Face tags, reads as `huggingface.co/...`, as Docker Model Runner writes and migrates them."""
    rest = stored.removeprefix(f"{HUGGINGFACE_SHORT}/")
    return stored if rest == stored else f"{HUGGINGFACE_REGISTRY}/{rest}"


def short_id(digest: str) -> str:
    """The 12 hex digits that name a model or a layer to users: `sha256:4a1b...` -> `4a1b...`."""
    return digest.removeprefix("sha256:")[:12]


def familiar_name(canonical: str) -> str:
    """A stored tag as `rm` and `tag` report it, as Docker does: Docker Hub's registry left out, the
    namespace and tag kept (`docker.io/ai/smollm2:latest` -> `ai/smollm2:latest`)."""
    return canonical.removeprefix(f"{DEFAULT_REGISTRY}/")


def display_name(canonical: str) -> str:
    """The display form of a stored tag; text that does not parse is shown as it is."""
    try:
        return parse_reference(canonical).display
    except InvalidReferenceError:
        return canonical


def is_model_id(text: str) -> bool:
    """True for `sha256:<64 hex>` and for a model ID prefix of 12 or more hex digits."""
    return _MODEL_ID.fullmatch(text) is not None


def is_id_prefix(text: str) -> bool:
    """True for text that can be the start of a model ID (`4a1b`, `sha256:4a1b...`); it may be a name too."""
    return _ID_PREFIX.fullmatch(text) is not None
