"""``portolan top``: its options and their errors (the screen itself is tested in
tests/tui)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from portolan.cli.app import main
from portolan.cli.top import parse_listen


def test_help_names_the_back_ends_and_the_export(cli: CliRunner) -> None:
    result = cli.invoke(main, ["top", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for word in ("--url", "--token", "--metrics", "127.0.0.1:8001", "top-export.tsv",
                 "selection.json", "--window"):
        assert word in text


@pytest.mark.parametrize(("args", "message"), [
    (["--db", "sqlite:///x.db", "--url", "http://127.0.0.1:1"], "exclude each other"),
    (["--token", "t"], "--token goes with --url"),
    (["--metrics", "8001"], "HOST:PORT"),
    (["--url", "ftp://127.0.0.1:1"], "not an http"),
    (["--window", "2h"], "'2h' is not one of"),
])
def test_wrong_options_are_one_clear_line(cli: CliRunner, args: list[str],
                                          message: str) -> None:
    result = cli.invoke(main, ["top", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8001") == ("127.0.0.1", 8001)
    assert parse_listen("[::1]:9") == ("::1", 9)
    assert parse_listen("off") is None
    with pytest.raises(click.BadParameter):
        parse_listen("127.0.0.1:99999")
