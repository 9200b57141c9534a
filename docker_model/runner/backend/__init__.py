"""The llama.cpp backend: one worker process per loaded model, and the runner-side launcher.

Only this package imports `llama_cpp`, and only from the worker-side modules (`llama`, `sampling`,
`engine`, `worker`); `launcher` and `handoff` stay importable by the runner without it.
"""
