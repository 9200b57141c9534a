pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.docker_cli",
    "tests.fixtures.runner",
    "tests.fixtures.registry",
    "tests.fixtures.gguf_files",
]
