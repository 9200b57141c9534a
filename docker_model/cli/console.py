"""`docker model console [--print]`: the runner's web console, opened in the default browser, or its URL
printed where no browser can be opened. The URL never holds the token: the console asks for it."""

from __future__ import annotations

import webbrowser

import click

from docker_model.cli.client import RunnerClient

CONSOLE_PATH = "/console/"
# What Python's `webbrowser` falls back to on a Linux machine without a display: they cannot run the console.
TEXT_BROWSERS = {"www-browser", "links", "elinks", "lynx", "w3m"}


def console_url(client: RunnerClient) -> str:
    return client.url(CONSOLE_PATH)


def graphical_browser() -> webbrowser.BaseBrowser | None:
    """The default browser ($BROWSER's, else the desktop's), None where there is none but a text browser."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return None
    return None if browser.name in TEXT_BROWSERS else browser


@click.command()
@click.option("--print", "print_only", is_flag=True, help="Print the console's URL, and open no browser")
def console(print_only: bool) -> None:
    """Open the web console: models, chat, running models and a monitor, in the browser."""
    client = RunnerClient()
    client.ensure_running()
    url = console_url(client)
    if print_only:
        click.echo(url)
        return
    browser = graphical_browser()
    if browser is not None and browser.open(url):
        click.echo(f"Opened the console in your browser: {url}")
        return
    click.echo(url)
    click.echo("No browser could be opened here: open the URL above in a browser on this machine", err=True)
