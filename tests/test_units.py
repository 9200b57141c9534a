from __future__ import annotations

import pytest

from docker_model.cli.render import human_duration, table, time_until
from docker_model.units import human_bytes, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("1h30m", 5400), ("90s", 90), ("250ms", 0.25), ("0", 0), ("-1", -1)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "m5", "-5m"])
def test_bad_durations_name_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="use a number with a unit like 30s, 5m or 1h"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0.00B"), (512, "512.00B"), (98_362_432, "98.36MB"), (1_500, "1.50kB"), (2_000_000_000, "2.00GB")],
)
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "Less than a second"), (30, "30 seconds"), (90, "About a minute"), (3600, "About an hour"),
     (5 * 3600, "5 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (70 * 86400, "2 months")],
)  # fmt: skip
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_time_until() -> None:
    assert time_until(None) == "Never"
    assert time_until(100, now=200) == "Now"
    assert time_until(400, now=100) == "5 minutes from now"


def test_table_is_borderless_and_left_aligned() -> None:
    assert table(("A", "LONGER"), [["wide value", "x"]]).splitlines() == ["A            LONGER", "wide value   x"]
