"""The web console: its routes (`routes.py`) and the app they serve (`static/`, built from `web/`). Its paths
are here, without imports, for the access checks (`api/access.py`) to read."""

PREFIX = "/console"
ASSETS = f"{PREFIX}/static/"


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def is_public(method: str, path: str) -> bool:
    """Whether a request reads the console's page or assets, which hold no data and need no token."""
    return method in ("GET", "HEAD") and (path in (PREFIX, f"{PREFIX}/") or path.startswith(ASSETS))
