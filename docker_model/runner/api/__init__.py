"""The runner's HTTP API: one module per group of routes, assembled by docker_model.runner.app."""
