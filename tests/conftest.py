pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.gguf_files",
    "tests.fixtures.registry",
    "tests.fixtures.docker_cli",
    "tests.fixtures.runner",
    "tests.fixtures.token_registry",
    "tests.fixtures.search_services",
]
