"""docker-model: a Docker CLI plugin that pulls, runs and serves LLMs on the local machine."""

__version__ = "0.1.0"
