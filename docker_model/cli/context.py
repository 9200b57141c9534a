"""`docker model context create|use|ls|rm|inspect`: manage the named runners of `contexts.py`."""

from __future__ import annotations

import json
import os
import sys

import click

from docker_model import settings
from docker_model.cli.contexts import (
    DEFAULT,
    NAME,
    ContextConfig,
    TLSConfig,
    current_name,
    read,
    read_tokens,
    token_of,
    updating,
)
from docker_model.cli.lazy_group import LazyCommand, LazyGroup

HIDDEN = "(hidden)"  # how `inspect` shows a stored token


def default_url() -> str:
    """This machine's runner, as `default` reaches it (MODEL_RUNNER_HOST aside)."""
    return f"{'https' if settings.tls_files() else 'http'}://{settings.DEFAULT_RUNNER_BIND}:{settings.runner_port()}"


def check_name(name: str) -> None:
    if name == DEFAULT:
        raise click.ClickException(f"the context name {DEFAULT!r} is reserved for the runner on this machine")
    if not NAME.fullmatch(name):
        raise click.ClickException(
            f"invalid context name {name!r}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )


def warn_if_overridden() -> None:
    host = os.environ.get("MODEL_RUNNER_HOST")
    if host:
        click.echo(f'Warning: MODEL_RUNNER_HOST="{host}" overrides the current context.', err=True)


def read_token(value: str | None) -> str | None:
    """`--token`: the token itself, or `-` to read it from stdin (so that it stays out of shell history), asked
    for without echo when stdin is a terminal."""
    if value != "-":
        return value
    if sys.stdin.isatty():
        token = click.prompt("Token", hide_input=True, default="", show_default=False, err=True).strip()
    else:
        token = sys.stdin.readline().strip()
    if not token:
        raise click.BadParameter("no token on stdin", param_hint="--token")
    return token


def warn_if_sent_in_clear(name: str, url: str) -> None:
    """A token goes with every request: over plain HTTP to another machine, anyone on the way can read it."""
    from docker_model.distribution.registry.httpio import may_carry_credentials

    if not may_carry_credentials(url):
        click.echo(
            f"Warning: context {name!r} sends its token in clear to {url} (plain HTTP to another machine): "
            "serve the runner over HTTPS and use --tls, or reach it through an SSH tunnel on localhost",
            err=True,
        )


def check_ca(path: str) -> str:
    import ssl

    absolute = os.path.abspath(path)
    try:
        ssl.create_default_context().load_verify_locations(absolute)
    except (OSError, ssl.SSLError) as error:
        raise click.BadParameter(f"cannot use {absolute} as a CA certificate (PEM): {error}") from None
    return absolute


@click.command()
@click.argument("name")
@click.option("--host", required=True, help="The runner's base URL (e.g. http://192.168.1.100:12434)")
@click.option("--token", help="The runner's token (see `docker model status` there); `-` reads it from stdin")
@click.option("--tls", is_flag=True, help="Use HTTPS (as an https:// --host does)")
@click.option("--tls-ca-cert", metavar="PATH", help="A CA certificate (PEM) to trust for this runner")
@click.option("--tls-skip-verify", is_flag=True, help="Do not check the runner's certificate (insecure)")
@click.option("--description", default="", help="A note shown by `context ls`")
def create(
    name: str,
    host: str,
    token: str | None,
    tls: bool,
    tls_ca_cert: str | None,
    tls_skip_verify: bool,
    description: str,
) -> None:
    """Create a named runner context."""
    from datetime import datetime, timezone

    check_name(name)
    try:
        url = settings.http_url(host)
    except ValueError:
        raise click.BadParameter(
            f"{host!r} is not a URL: use one like http://192.168.1.100:12434", param_hint="--host"
        ) from None
    if tls and url.startswith("http://"):
        url = "https://" + url.removeprefix("http://")
    secure = url.startswith("https://")
    for flag, given in (("--tls-ca-cert", tls_ca_cert), ("--tls-skip-verify", tls_skip_verify)):
        if given and not secure:
            raise click.UsageError(f"{flag} needs TLS: add --tls, or give an https:// --host")
    if tls_ca_cert and tls_skip_verify:
        raise click.UsageError("--tls-ca-cert and --tls-skip-verify contradict each other: give one")
    security: TLSConfig = {"enabled": secure}
    if tls_ca_cert:
        security["caCert"] = check_ca(tls_ca_cert)
    if tls_skip_verify:
        security["skipVerify"] = True
    config: ContextConfig = {
        "host": url,
        "tls": security,
        "description": description,
        "createdAt": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    secret = read_token(token)
    with updating() as (contents, tokens):
        if name in contents["contexts"]:
            raise click.ClickException(f"context {name!r} already exists: `docker model context rm {name}` first")
        contents["contexts"][name] = config
        if secret:
            tokens[name] = {"host": url, "token": secret}
    click.echo(f'Context "{name}" created.')
    if secret:
        warn_if_sent_in_clear(name, url)


@click.command()
@click.argument("name")
def use(name: str) -> None:
    """Make a context the current one (`default`: the runner on this machine)."""
    if name != DEFAULT:
        check_name(name)
    with updating() as (contents, _):
        if name != DEFAULT and name not in contents["contexts"]:
            raise click.ClickException(f"context {name!r} not found; `docker model context ls` lists them")
        if name == DEFAULT:
            contents.pop("current", None)
        else:
            contents["current"] = name
    click.echo(f'Current context is now "{name}".')
    warn_if_overridden()


@click.command()
def ls() -> None:
    """List the contexts."""
    from docker_model.cli.render import table

    contents = read(settings.contexts_path())
    current = current_name(contents)
    warn_if_overridden()
    rows = [[DEFAULT, default_url(), "The runner on this machine", "*" if current == DEFAULT else ""]]
    for name in sorted(contents["contexts"]):
        config = contents["contexts"][name]
        rows.append([name, config.get("host", ""), config.get("description", ""), "*" if current == name else ""])
    click.echo(table(("NAME", "HOST", "DESCRIPTION", "CURRENT"), rows))


@click.command()
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...]) -> None:
    """Remove contexts (not the current one: `use` another first)."""
    failed = []
    for name in names:
        try:
            with updating() as (contents, _):  # its token goes with it
                if name == DEFAULT:
                    raise click.ClickException(f"{DEFAULT!r} is the runner on this machine and cannot be removed")
                if name not in contents["contexts"]:
                    raise click.ClickException(f"context {name!r} not found")
                if current_name(contents) == name:
                    raise click.ClickException(
                        f"context {name!r} is the current context: `docker model context use default` first"
                    )
                del contents["contexts"][name]
        except click.ClickException as error:
            click.echo(f"Error: {error.message}", err=True)
            failed.append(name)
            continue
        click.echo(f'Context "{name}" removed.')
    if failed:
        sys.exit(1)


@click.command()
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...]) -> None:
    """Show contexts as JSON (a stored token is shown as `(hidden)`)."""
    contents, tokens = read(settings.contexts_path()), read_tokens()
    shown: list[dict[str, object]] = []
    for name in names:
        if name == DEFAULT:
            shown.append({"name": DEFAULT, "host": default_url(), "description": "The runner on this machine"})
            continue
        config = contents["contexts"].get(name)
        if config is None:
            raise click.ClickException(f"context {name!r} not found; `docker model context ls` lists them")
        hidden = {"token": HIDDEN} if token_of(name, config, tokens) else {}
        shown.append({"name": name, **{k: v for k, v in config.items() if k != "token"}, **hidden})
    click.echo(json.dumps(shown, indent=4))


context = LazyGroup(
    "context",
    lazy_commands={
        "create": LazyCommand("docker_model.cli.context:create", "Create a named runner context"),
        "use": LazyCommand("docker_model.cli.context:use", "Make a context the current one"),
        "ls": LazyCommand("docker_model.cli.context:ls", "List the contexts"),
        "rm": LazyCommand("docker_model.cli.context:rm", "Remove contexts"),
        "inspect": LazyCommand("docker_model.cli.context:inspect", "Show contexts as JSON"),
    },
    aliases={"list": "ls", "remove": "rm"},
    help="Manage runner contexts: named runners on this or other machines, with their token and TLS settings.",
)
