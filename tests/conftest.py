pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.docker_cli",
    "tests.fixtures.runner",
]
