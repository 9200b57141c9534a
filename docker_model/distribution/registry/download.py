"""A resumable, verified download of one blob into the store, from a registry or any HTTP URL."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NoReturn

import requests

from docker_model.distribution.cancel import CancelToken
from docker_model.distribution.errors import AnswerTooLargeError, PullCancelledError
from docker_model.distribution.progress import ProgressTracker
from docker_model.distribution.registry.httpio import NETWORK_ERRORS, TransientError
from docker_model.distribution.store.blobs import BlobStore, IncompleteBlob

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")

# (headers) -> a 200 or 206 response to one GET of the blob; raises TransientError for 5xx/network
# failures and a DistributionError for any other answer.
Fetch = Callable[[dict[str, str]], requests.Response]
# (action) -> result: runs `action` with retries and backoff.
Retry = Callable[[Callable[[], None]], None]


def download_blob(
    blobs: BlobStore,
    digest: str,
    size: int,
    fetch: Fetch,
    retry: Retry,
    tracker: ProgressTracker,
    cancel: CancelToken,
) -> None:
    """Fetch `digest` unless the store has it, resuming a `.incomplete` file with a Range request.

    A server that ignores the range (200 instead of 206) makes the download start over. No more than
    `size` bytes are ever written: a longer answer is AnswerTooLargeError (nothing kept). The whole blob's
    sha256 is checked before it is renamed into place (DigestMismatchError otherwise, file deleted).
    """

    def waiting() -> None:
        tracker.update(digest, size, blobs.incomplete_size(digest), "Waiting for another download")

    with blobs.receive(digest, cancel, waiting) as blob:
        if blob is None:
            tracker.update(digest, size, size, "Already exists")
            return
        if blob.offset > size:
            blob.restart()  # more than the blob's size: not the blob
        if blob.offset < size:
            retry(lambda: _transfer(blob, size, fetch, tracker, cancel))
        blob.commit()
        tracker.update(digest, size, size, "Download complete")


def _transfer(blob: IncompleteBlob, size: int, fetch: Fetch, tracker: ProgressTracker, cancel: CancelToken) -> None:
    headers = {"Accept-Encoding": "identity"}
    if blob.offset:
        headers["Range"] = f"bytes={blob.offset}-"
    with fetch(headers) as response:
        if response.status_code == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match[1]) != blob.offset:
                raise TransientError(f"bad Content-Range {response.headers.get('Content-Range')!r}")
        elif blob.offset:
            blob.restart()  # a 200: the server ignored the range, so start over
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and blob.offset + int(length) > size:
            _too_long(blob, size)
        tracker.update(blob.digest, size, blob.offset)
        try:
            # read1 hands over whatever has arrived, so a dropped connection loses no received byte
            while blob.offset < size and (
                chunk := response.raw.read1(min(CHUNK, size - blob.offset), decode_content=True)
            ):
                if cancel.is_set():
                    raise PullCancelledError()
                blob.write(chunk)
                tracker.update(blob.digest, size, blob.offset)
        except NETWORK_ERRORS as exc:
            raise TransientError(exc) from exc
        if blob.offset == size and _more(response):
            _too_long(blob, size)
    if blob.offset < size:
        raise TransientError(f"connection closed after {blob.offset} of {size} bytes")


def _more(response: requests.Response) -> bool:
    """Whether an answer goes on past the bytes read (a failing connection counts as ending)."""
    try:
        return bool(response.raw.read1(1, decode_content=True))
    except NETWORK_ERRORS:
        return False


def _too_long(blob: IncompleteBlob, size: int) -> NoReturn:
    blob.restart()
    raise AnswerTooLargeError(f"blob {blob.digest}", size, announced=True)
