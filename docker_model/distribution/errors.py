"""Errors of the distribution library: each message names the problem and, where there is one, the fix."""

from __future__ import annotations

from docker_model.reference import InvalidReferenceError

__all__ = [
    "AnswerTooLargeError",
    "ArchiveDigestError",
    "AuthenticationError",
    "ConflictError",
    "DigestMismatchError",
    "DistributionError",
    "InvalidReferenceError",
    "ModelNotFoundError",
    "PullCancelledError",
    "RegistryError",
    "RegistryUnreachableError",
    "StoreCorruptError",
    "UnsupportedFormatError",
]


class DistributionError(Exception):
    """Base class; `str(error)` is a one-line message fit to show a user."""


class ModelNotFoundError(DistributionError):
    def __init__(self, name: str, where: str = "locally") -> None:
        if where == "locally":
            message = f"model not found: {name}; pull it with 'docker model pull {name}' (see 'docker model list')"
        else:
            message = f"model not found {where}: {name}; check the name and tag"
        super().__init__(message)
        self.name = name


class UnsupportedFormatError(DistributionError):
    def __init__(self, what: str) -> None:
        super().__init__(f"unsupported model format: {what}; only GGUF models packaged for Docker Model Runner work")


class RegistryUnreachableError(DistributionError):
    def __init__(self, registry: str, cause: object) -> None:
        super().__init__(f"cannot reach registry {registry}: {cause}; check the network and the registry address")
        self.registry = registry


class RegistryError(DistributionError):
    """The registry answered with an error this library cannot recover from."""

    def __init__(self, registry: str, status: int, detail: str) -> None:
        super().__init__(f"registry {registry} answered {status}: {detail}")
        self.status = status


class AuthenticationError(DistributionError):
    def __init__(self, registry: str, rejected: bool, fix: str | None = None) -> None:
        if rejected:
            problem = "rejected the credentials (wrong username, password or token)"
        else:
            problem = "requires authentication"
        super().__init__(f"{registry} {problem}: {fix or f'run docker login {registry}'}")
        self.registry = registry


class DigestMismatchError(DistributionError):
    def __init__(self, expected: str, actual: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"downloaded content does not match its digest (expected {expected}, got {actual}): "
            "the download was discarded; pull again, and report the registry if it keeps happening"
        )
        self.expected = expected
        self.actual = actual


class AnswerTooLargeError(DistributionError):
    """An answer longer than this client reads, or than the size announced for it: never kept."""

    def __init__(self, what: str, limit: int, announced: bool = False) -> None:
        if announced:
            message = (
                f"{what} is longer than the {limit} bytes announced for it: it was discarded; "
                "pull again, and report the registry if it keeps happening"
            )
        else:
            size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"
            message = f"{what} is over the {size} limit: it was not read; check the registry's address and the name"
        super().__init__(message)


class ConflictError(DistributionError):
    """E.g. deleting by ID a model that has several tags without `force`."""


class PullCancelledError(DistributionError):
    def __init__(self) -> None:
        super().__init__("pull cancelled: run the pull again to resume where it stopped")


class ArchiveDigestError(DigestMismatchError):
    """A blob of a model archive (`docker model load`) whose bytes are not the ones its name promises."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            expected,
            actual,
            f"the model archive's blob {expected} does not match its digest (got {actual}): the archive is "
            "damaged or was altered; nothing was stored; save the model again from its source",
        )


REPAIR_HINT = "run 'docker model check --repair', then pull the model again"


class StoreCorruptError(DistributionError):
    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"model store file {path} is damaged ({problem}): {REPAIR_HINT}")
