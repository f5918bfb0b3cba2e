"""`clarion directory import` and `clarion segments count|list`, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.cli import main as cli_main
from dispatcher.domain import ChannelKind
from dispatcher.settings import load_settings
from dispatcher.store.database import open_database
from segments.audience import AudienceResolver
from segments.cli import parse_channels
from segments.synthetic import write_campus
from tests.segments.helpers import person, write_rows

ROWS = [
    person("P1", groups="band"),
    person("P2", email="broken"),
    person("P3", role="staff", building="admin", language="es"),
    person("P4", building="science-center", phone=""),
]


def clarion(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "dispatcher.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config folder with the campus map, a store URL and a named segment."""
    write_campus(tmp_path, 0, 12)
    write_rows(tmp_path / "people.csv", ROWS)
    (tmp_path / "clarion.toml").write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "clarion.db"}"\n\n'
        '[directory]\npeople = "people.csv"\ndevices = "devices.csv"\n'
        'buildings = "buildings.csv"\n'
        'segments = { residents-north = "role:student and building:north-hall" }\n',
        encoding="utf-8",
    )
    return tmp_path


def test_import_reports_rejected_rows(site: Path) -> None:
    result = clarion("directory", "import", "people.csv", "--config", "clarion.toml", cwd=site)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "people: 4 rows: 3 added, 0 changed, 0 unchanged, 0 removed, 1 rejected",
        "rejected:",
        "  row 3: email is not a valid address",
        "kept as import 1",
    ]
    again = clarion("directory", "import", "people.csv", "--config", "clarion.toml", "--json",
                    cwd=site)
    report = json.loads(again.stdout)
    assert (report["added"], report["unchanged"]) == (0, 3)
    assert report["rejected"] == [{"row": 3, "reason": "email is not a valid address"}]


def test_a_truncated_file_is_held_until_confirmed(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        status = cli_main([*args, "--config", str(site / "clarion.toml")])
        out, err = capsys.readouterr()
        return status, out, err

    people, short = str(site / "people.csv"), str(site / "short.csv")
    assert run("directory", "import", people)[0] == 1
    write_rows(site / "short.csv", ROWS[:1])
    status, out, _ = run("directory", "import", short, "--remove-missing")
    assert status == 3
    # Only students are in the short file: one of the two stored students would go.
    assert "held as import 2: it would change or remove 50%" in out
    assert "nothing was written" in out
    listed = json.loads(run("directory", "imports", "list", "--json")[1])
    assert [(e["id"], e["state"], e["report"]["removed"]) for e in listed] == [
        (2, "held", 1), (1, "applied", 0)
    ]
    assert json.loads(run("segments", "count", "all", "--json")[1])["total"] == 3
    status, out, _ = run("directory", "imports", "confirm", "2")
    assert status == 0
    assert "state: confirmed by cli:" in out
    assert "1 unchanged, 1 removed" in out
    assert json.loads(run("segments", "count", "all", "--json")[1])["total"] == 2
    assert run("directory", "imports", "confirm", "2")[::2] == (
        2, "clarion: directory import 2 is confirmed, not held\n"
    )


def test_import_devices_and_bad_files(site: Path) -> None:
    ok = clarion("directory", "import", "devices.csv", "--devices", "--config", "clarion.toml",
                 cwd=site)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("devices: 12 rows: 12 added")
    missing = clarion("directory", "import", "nope.csv", "--config", "clarion.toml", cwd=site)
    assert missing.returncode == 2
    assert "nope.csv: no such file" in missing.stderr


@pytest.fixture
async def filled(site: Path) -> Path:
    """The site with its people and devices already imported."""
    settings = load_settings(site / "clarion.toml")
    db = await open_database(settings.store.url)
    try:
        resolver = AudienceResolver(db, settings.directory, settings.base_dir)
        await resolver.load_example()
    finally:
        await db.close()
    return site


def test_count_json_and_text(filled: Path) -> None:
    site = filled
    result = clarion("segments", "count", "zone:b or residents-north", "--json",
                     "--channels", "siren,signage,pa,desktop,sms,push,email",
                     "--config", "clarion.toml", cwd=site)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "total": 7,
        "by_role": {"device": 4, "staff": 1, "student": 2},
        "by_channel": {"siren": 1, "signage": 2, "pa": 1, "desktop": 0, "sms": 2, "push": 3,
                       "email": 3},
    }
    # By default an emergency sounds no siren and no PA: they are chosen explicitly.
    default = json.loads(clarion("segments", "count", "zone:b or residents-north", "--json",
                                 "--config", "clarion.toml", cwd=site).stdout)
    assert default["total"] == 5 and "siren" not in default["by_channel"]
    assert "pa" not in default["by_channel"]
    zoned = clarion("segments", "count", "all", "--zones", "b", "--exclude-zones", "b-labs",
                    "--channels", "sms,email", "push", "--kind", "advisory", "--json",
                    "--config", "clarion.toml", cwd=site)
    assert json.loads(zoned.stdout) == {
        "total": 1, "by_role": {"staff": 1}, "by_channel": {"sms": 1, "push": 1, "email": 1},
    }
    text = clarion("segments", "count", "residents-north", "--config", "clarion.toml", cwd=site)
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["total", "1"]
    assert "by role" in lines and "by channel" in lines


def test_count_errors(site: Path) -> None:
    result = clarion("segments", "count", "role:student and (zone:a", "--config", "clarion.toml",
                     cwd=site)
    assert result.returncode == 2
    assert "audience: expected 'and', 'or' or ')' at position 25" in result.stderr


def test_channel_arguments() -> None:
    default = [ChannelKind.EMAIL]
    assert parse_channels(None, default) == default
    assert parse_channels(["sms,email", "PUSH", "sms"], default) == [
        ChannelKind.SMS, ChannelKind.EMAIL, ChannelKind.PUSH
    ]
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        parse_channels(["fax"], default)


def test_list_named_segments(site: Path) -> None:
    result = clarion("segments", "list", "--config", "clarion.toml", cwd=site)
    assert result.stdout.split() == ["residents-north", "role:student", "and",
                                     "building:north-hall"]
