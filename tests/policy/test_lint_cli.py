"""`clarion lint`: JSON Lines in, one verdict per line out, exit codes 0/1/2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.alerting.lint import main
from tests.policy.helpers import EXAMPLES

CLEAN = '{"kind": "emergency", "text": "Fire at Carver Hall. Evacuate now."}'
NAMED = '{"kind": "timely_warning", "text": "Anna Kim, a junior, was robbed. Walk with others."}'


def _run(stdin: str, config: Path | None = None) -> tuple[int, list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(io.StringIO(stdin), out, err, config=config)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_clean_input_exits_0() -> None:
    """Every message clean: exit 0, one verdict per line."""
    code, verdicts, err = _run(CLEAN + "\n" + CLEAN + "\n")
    assert (code, len(verdicts), err) == (0, 2, "")
    assert verdicts[0]["ok"] is True and verdicts[0]["violations"] == []


def test_warnings_only_ok_but_exit_1() -> None:
    """A live emergency with no instruction and a text too long for SMS: `ok` (nothing blocks),
    warnings listed, the derived short texts given, and exit 1 (a warning is a violation)."""
    text = "Armed person reported near the stadium. " + "Police are searching the area. " * 20
    code, [verdict], _ = _run(json.dumps({"kind": "emergency", "text": text}) + "\n")
    assert code == 1 and verdict["ok"] is True
    rules = {v["rule"]: v["severity"] for v in verdict["violations"]}  # type: ignore[union-attr]
    assert rules["actionable.no_instruction"] == "warning"
    assert rules["brevity.derived"] == "warning"
    assert set(verdict["derived"]) >= {"sms", "push", "signage", "pa", "desktop"}  # type: ignore[arg-type]


def test_violation_exits_1_in_order() -> None:
    """Any violation: exit 1; verdicts keep the input order; blank lines are skipped."""
    code, verdicts, _ = _run(CLEAN + "\n\n" + NAMED + "\n")
    assert code == 1 and len(verdicts) == 2
    assert verdicts[0]["violations"] == []
    assert verdicts[1]["violations"][0]["rule"] == "confidentiality.name"


def test_warning_counts_as_violation() -> None:
    """A warning is a violation for the exit code, while ok stays true."""
    code, verdicts, _ = _run(
        '{"kind": "all_clear", "text": "ALL CLEAR: resume normal activities."}\n'
    )
    assert code == 1 and verdicts[0]["ok"] is True


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('{"text": "Evacuate now."}', "line 2: missing kind"),
        ('{"kind": "weather", "text": "Evacuate now."}', "line 2: unknown kind 'weather'"),
        ('{"kind": "emergency", "text": "   "}', "line 2: empty text"),
        ('{"kind": "emergency", "text": ""}', "line 2: empty text"),
        ('{"kind": "emergency"}', "line 2: missing text"),
        ('["kind"]', "line 2: expected a JSON object"),
        ('{"kind": "emergency", "text": "x", "mode": "rehearsal"}', "line 2: mode"),
        ('{"kind": "emergency", "template": "nope"}', "line 2: unknown template"),
    ],
)
def test_malformed_exits_2_naming_the_line(line: str, message: str) -> None:
    """Malformed input: exit 2, nothing on stdout, stderr names the line and the problem."""
    code, verdicts, err = _run(CLEAN + "\n" + line + "\n")
    assert code == 2 and verdicts == []
    assert message in err


def test_labels_are_ignored() -> None:
    """Keys outside the request (a corpus's "expect") do not make a line malformed."""
    code, verdicts, _ = _run(EXAMPLES.read_text(encoding="utf-8"))
    assert code == 1 and len(verdicts) == 14


def test_config_option(tmp_path: Path) -> None:
    """--config reads the policy from the given file; a bad file exits 2."""
    config = tmp_path / "clarion.toml"
    config.write_text("[policy]\nsms_max_segments = 1\n")
    own = json.dumps({"kind": "timely_warning", "text": "Theft. Lock your doors.",
                      "texts": {"sms": "Lock your doors. " + "xxxx " * 40}})
    long = json.dumps({"kind": "timely_warning", "text": "Lock your doors. " + "xxxx " * 40})
    code, verdicts, _ = _run(own + "\n" + long + "\n", config)
    assert code == 1 and [v["rule"] for v in verdicts[0]["violations"]] == ["brevity.sms_segments"]
    # A long text of its own is shaped to the configured one segment.
    assert verdicts[1]["ok"] and verdicts[1]["segments"]["sms"] == 1
    code, _, err = _run(CLEAN + "\n", tmp_path / "missing.toml")
    assert code == 2 and "no such config file" in err


def _entry_point() -> Path | None:
    script = Path(sys.executable).parent / "clarion"
    if not script.exists():
        return None
    probe = subprocess.run(  # noqa: S603 - our own console script
        [script, "lint", "--help"], capture_output=True, timeout=60
    )
    return script if probe.returncode == 0 else None


def test_console_script() -> None:
    """The installed `clarion lint` behaves the same (when the console script is wired)."""
    script = _entry_point()
    if script is None:
        pytest.skip("the clarion console script does not start in this checkout")
    examples = EXAMPLES.read_bytes()
    done = subprocess.run(  # noqa: S603 - our own console script
        [script, "lint"], input=examples, capture_output=True, timeout=120
    )
    assert done.returncode == 1 and len(done.stdout.splitlines()) == 14
    bad = subprocess.run(  # noqa: S603 - our own console script
        [script, "lint"], input=b"{not json\n", capture_output=True, timeout=60
    )
    assert bad.returncode == 2 and b"line 1" in bad.stderr


def test_suggestions_in_the_verdict() -> None:
    """`clarion lint` gives each confidentiality violation a "suggestion"; others have none."""
    line = json.dumps({
        "kind": "timely_warning",
        "text": "Timely Warning: A resident of Hill Hall room 418 was robbed by Kevin Miller's "
        "roommate.",
    })
    _, [verdict], _ = _run(line + "\n")
    by_rule = {v["rule"]: v for v in verdict["violations"]}
    assert by_rule["confidentiality.residence_unit"]["suggestion"] == "a residence hall room"
    assert by_rule["confidentiality.name"]["suggestion"] == "a student"
    assert "suggestion" not in by_rule["actionable.no_safety_tip"]
