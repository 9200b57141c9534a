"""IDs of OpenAI Responses that say which model made them: a worker keeps its recent responses in memory,
and the runner finds that worker from the ID alone (`GET /v1/responses/{id}`), loading nothing."""

from __future__ import annotations

import uuid

PREFIX = "resp_"
STORE_SIZE = 256  # responses a loaded model keeps, the oldest dropped first
STORE_SECONDS = 3600  # how long it keeps each


def new_response_id(model_id: str) -> str:
    """`resp_<model short ID>_<random hex>`; `resp_<random hex>` for a worker that was not told its model's ID."""
    return f"{PREFIX}{model_id}_{uuid.uuid4().hex}" if model_id else f"{PREFIX}{uuid.uuid4().hex}"


def model_of(response_id: str) -> str:
    """The short ID of the model that made `response_id`; "" when the ID does not say."""
    if not response_id.startswith(PREFIX):
        return ""
    model_id, _, _ = response_id.removeprefix(PREFIX).rpartition("_")
    return model_id


def not_found_message(response_id: str) -> str:
    return (
        f"response {response_id} not found: the model that made it keeps its last {STORE_SIZE} responses (those "
        f"not made with store: false) for {STORE_SECONDS // 60} minutes, in memory, until it unloads"
    )
