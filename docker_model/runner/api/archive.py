"""A model's archive (`GET /models/{name}/export`, `docker model save`); the store's check and prune are in
`store_admin.py`.

Names follow the rules of `models.py`. `export` is a suffix after the model's full name, as Docker Model
Runner has it; so a model whose name ends in `/export` is read by GET with its tag or digest
(`/models/ai/export:latest`), as the CLI always names models.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from docker_model import distribution
from docker_model.distribution.store import oci_layout
from docker_model.reference import parse_reference
from docker_model.runner.api.common import state_of
from docker_model.runner.api.models import model_name, names_a_tag
from docker_model.runner.shared.error_body import APIError

log = logging.getLogger(__name__)


class ArchiveResponse(StreamingResponse):
    """A model archive as it is read. A blob found damaged on the way (StoreCorruptError) ends the response
    unfinished: the server closes the connection, and the client gets less than the Content-Length it was
    told, never an archive that looks whole."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except distribution.StoreCorruptError as error:
            log.error("model export stopped: %s", error)


async def export_model(request: Request) -> Response:
    """The model as an OCI image layout tarball (`docker model save`), named by the tag it was asked for,
    or by all its tags when asked for by ID."""
    name = model_name(request)
    store = state_of(request).store
    try:
        model = await asyncio.to_thread(store.get, name)
    except distribution.ModelNotFoundError:
        whole = f"{name}/export"
        if await asyncio.to_thread(_exists, store, whole):
            raise APIError(
                404,
                f"model not found: {name} (GET /models/{whole} exports the model {name}); "
                f"to read the model {whole}, name it with its tag: GET /models/{whole}:latest",
                "name",
                "model_not_found",
            ) from None
        raise
    tags = [str(parse_reference(name))] if names_a_tag(model, name) else model.tags
    raw = await asyncio.to_thread(store.manifests.read, model.id)
    archive = await asyncio.to_thread(oci_layout.export_model, store.blobs, model, raw, tags)
    filename = (tags[0] if tags else model.id).replace("/", "_").replace(":", "_") + ".tar"
    headers = {"Content-Length": str(archive.size), "Content-Disposition": f'attachment; filename="{filename}"'}
    return ArchiveResponse(archive.chunks(), media_type=oci_layout.TAR_MEDIA_TYPE, headers=headers)


def _exists(store: distribution.Store, name: str) -> bool:
    try:
        store.get(name)
    except (distribution.ModelNotFoundError, distribution.InvalidReferenceError):
        return False
    return True


routes = [Route("/models/{name:path}/export", export_model, methods=["GET"])]
