"""Push a model to an OCI registry: blobs it lacks (config, layers), then the manifest."""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from docker_model.distribution.artifact import MANIFEST_MEDIA_TYPE
from docker_model.distribution.errors import DistributionError
from docker_model.distribution.progress import ProgressCallback, ProgressTracker
from docker_model.distribution.registry.transport import Transport, registry_error
from docker_model.reference import Reference

MAX_PARALLEL_UPLOADS = 4
_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class BlobSource:
    """A blob to push: its bytes are in `path`, or in `data` for small ones (the config)."""

    digest: str
    size: int
    path: Path | None = None
    data: bytes | None = None


class _ProgressReader:
    """A request body: a reader with a length (so requests sends Content-Length) that reports progress.

    Deliberately not an io class: requests would ask it for `tell()` and, failing, send no body.
    """

    def __init__(self, source: BlobSource, report: Callable[[int], None]) -> None:
        self._file = open(source.path, "rb") if source.path else io.BytesIO(source.data or b"")  # noqa: SIM115
        self._size = source.size
        self._done = 0
        self._report = report

    def __len__(self) -> int:
        return self._size - self._done

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(_READ_SIZE if size < 0 else size)
        self._done += len(chunk)
        self._report(self._done)
        return chunk

    def close(self) -> None:
        self._file.close()


def push_scope(ref: Reference) -> str:
    return f"repository:{ref.repository}:pull,push"


def _upload(transport: Transport, ref: Reference, blob: BlobSource, tracker: ProgressTracker) -> None:
    scope = push_scope(ref)
    blob_url = transport.url(f"{ref.repository}/blobs/{blob.digest}")

    def attempt() -> None:
        with transport.request("HEAD", blob_url, scope) as response:
            if response.status_code == 200:
                tracker.update(blob.digest, blob.size, blob.size, "Already exists")
                return
        with transport.request("POST", transport.url(f"{ref.repository}/blobs/uploads/"), scope) as response:
            if response.status_code != 202 or "Location" not in response.headers:
                raise registry_error(ref.registry, response)
            location = transport.url(response.headers["Location"])
        separator = "&" if "?" in location else "?"
        readers: list[_ProgressReader] = []

        def body() -> _ProgressReader:  # a fresh reader each time the request is sent
            readers.append(_ProgressReader(blob, lambda done: tracker.update(blob.digest, blob.size, done)))
            return readers[-1]

        try:
            with transport.request(
                "PUT",
                f"{location}{separator}digest={blob.digest}",
                scope,
                headers={"Content-Type": "application/octet-stream"},
                body=body,
            ) as response:
                if response.status_code != 201:
                    raise registry_error(ref.registry, response)
        finally:
            for reader in readers:
                reader.close()
        tracker.update(blob.digest, blob.size, blob.size, "Pushed")

    transport.retrying(attempt)


def push_blobs_and_manifest(
    transport: Transport,
    ref: Reference,
    manifest_bytes: bytes,
    blobs: list[BlobSource],
    progress: ProgressCallback | None = None,
) -> None:
    if ref.tag is None:
        raise DistributionError(f"cannot push to {ref}: name a tag to push to, not a digest")
    tracker = ProgressTracker(progress, sum(b.size for b in blobs))
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_UPLOADS, len(blobs)))) as pool:
        futures = [pool.submit(_upload, transport, ref, blob, tracker) for blob in blobs]
    for future in futures:
        future.result()

    def put_manifest() -> None:
        url = transport.url(f"{ref.repository}/manifests/{ref.tag}")
        headers = {"Content-Type": MANIFEST_MEDIA_TYPE}
        with transport.request("PUT", url, push_scope(ref), headers=headers, body=lambda: manifest_bytes) as response:
            if response.status_code != 201:
                raise registry_error(ref.registry, response)

    transport.retrying(put_manifest)
