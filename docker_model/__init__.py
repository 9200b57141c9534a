"""docker-model: a Docker CLI plugin that pulls, runs and serves LLMs on the local machine."""

# The version is the Docker Model Runner CLI version whose interface this plugin implements (Docker Compose
# hands a plugin `runtime_flags` from 1.0.6 on), then this project's release of it.
__version__ = "1.0.6.1"
DMR_COMPATIBILITY = __version__.rsplit(".", 1)[0]
