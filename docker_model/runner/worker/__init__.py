"""A model's worker process: loads one GGUF model with llama.cpp and answers the requests the runner hands
over, batching them in one engine. Everything here runs in the worker process, and only this package
imports `llama_cpp`. Run as `python -m docker_model.runner.worker` (see `__main__.py`).
"""
