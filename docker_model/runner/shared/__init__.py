"""What the runner and its workers both import: the hand-over's wire protocol, the one error body of
the API, and ASGI helpers. Nothing here imports `llama_cpp`."""
