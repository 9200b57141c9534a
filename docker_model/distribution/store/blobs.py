"""Content-addressed blobs: verified and on the disk before they become visible, resumable while incomplete."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from docker_model.distribution.cancel import CancelToken
from docker_model.distribution.errors import DigestMismatchError
from docker_model.distribution.store.layout import Layout
from docker_model.distribution.store.locks import lock_file_in_place
from docker_model.files import PRIVATE_FILE, atomic_write, fsync_path, with_path

_CHUNK = 1 << 20


class IncompleteBlob:
    """A `<blob>.incomplete` file held under an exclusive lock, hashed as it grows.

    Bytes already in the file (an earlier, interrupted download) are kept: `offset` says how many, so the
    caller can ask for the rest. `commit` checks the whole file's sha256, flushes it to the disk and renames
    it into place, so that a blob the index names survives a crash.
    """

    def __init__(self, fd: int, path: Path, final: Path, digest: str) -> None:
        self._file = os.fdopen(fd, "r+b", buffering=0)
        self._path = path
        self._final = final
        self.digest = digest
        self._hasher = hashlib.sha256()
        while chunk := self._file.read(_CHUNK):
            self._hasher.update(chunk)
        self.offset = self._file.tell()

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        try:
            while view:  # a raw write may take part of the chunk (a disk filling up does so)
                view = view[self._file.write(view) :]
        except OSError as error:
            raise with_path(error, self._path) from None
        self._hasher.update(chunk)
        self.offset += len(chunk)

    def restart(self) -> None:
        """Drop the bytes kept so far (e.g. the server ignored a Range request)."""
        self._file.seek(0)
        self._file.truncate()
        self._hasher = hashlib.sha256()
        self.offset = 0

    def commit(self) -> None:
        actual = "sha256:" + self._hasher.hexdigest()
        if actual != self.digest:
            self.discard()
            raise DigestMismatchError(self.digest, actual)
        try:
            os.fsync(self._file.fileno())
            os.replace(self._path, self._final)
            fsync_path(self._final.parent)
        except OSError as error:
            raise with_path(error, self._path) from None

    def discard(self) -> None:
        self._path.unlink(missing_ok=True)

    def close(self) -> None:
        self._file.close()


class BlobStore:
    def __init__(self, layout: Layout) -> None:
        self._layout = layout

    def path(self, digest: str) -> Path:
        return self._layout.blob(digest)

    def has(self, digest: str) -> bool:
        return self._layout.blob(digest).is_file()

    def size(self, digest: str) -> int:
        return self._layout.blob(digest).stat().st_size

    def incomplete_size(self, digest: str) -> int:
        try:
            return self._layout.incomplete(digest).stat().st_size
        except FileNotFoundError:
            return 0

    @contextmanager
    def receive(
        self,
        digest: str,
        cancel: CancelToken | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> Iterator[IncompleteBlob | None]:
        """Yield an IncompleteBlob to fill, or None when the blob is present (perhaps after waiting).

        Two receivers of one digest, in threads or processes, never write at once: the second waits for
        the first and then finds the blob present, or resumes what the first left behind.
        """
        self._layout.ensure()
        final, partial = self._layout.blob(digest), self._layout.incomplete(digest)
        while True:
            if final.is_file():
                yield None
                return
            fd = lock_file_in_place(partial, cancel, waiting)
            if fd is None:
                continue
            if final.is_file():  # finished by another holder between our checks
                partial.unlink(missing_ok=True)
                os.close(fd)
                continue
            blob = IncompleteBlob(fd, partial, final, digest)
            try:
                yield blob
            finally:
                blob.close()
            return

    def write_stream(self, digest: str, stream: BinaryIO) -> None:
        """Store the bytes of `stream` under `digest`, verified; a present blob is left as it is.

        A failed write leaves no partial file: no later write resumes a stream, so it would only take room.
        """
        with self.receive(digest) as blob:
            if blob is None:
                return
            blob.restart()
            try:
                while chunk := stream.read(_CHUNK):
                    blob.write(chunk)
                blob.commit()
            except BaseException:
                blob.discard()
                raise

    def write_file(self, digest: str, source: Path) -> None:
        with open(source, "rb") as f:
            self.write_stream(digest, f)

    def write_bytes(self, digest: str, data: bytes) -> None:
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatchError(digest, actual)
        if not self.has(digest):
            atomic_write(self._layout.blob(digest), data, mode=PRIVATE_FILE)

    def remove(self, digest: str) -> None:
        self._layout.blob(digest).unlink(missing_ok=True)
        self._layout.incomplete(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        """Digests of the complete blobs on disk."""
        if self._layout.blobs_dir.is_dir():
            for entry in self._layout.blobs_dir.iterdir():
                if len(entry.name) == 64 and entry.is_file():
                    yield f"sha256:{entry.name}"

    def incomplete_files(self) -> list[Path]:
        if not self._layout.blobs_dir.is_dir():
            return []
        return sorted(self._layout.blobs_dir.glob("*.incomplete"))
