"""Time `clarion lint` per message over the policy corpora (tests/policy/*.jsonl).

    python -m bench.lint_speed [--rounds 3]

Each round lints every labelled message once through `dispatcher.alerting.lint.main`, the code
behind `clarion lint`, with the per-sentence cache of the name finder emptied first, so every
message is judged cold. Settings loading and the first build of the name finder happen once,
before the clock starts, as in a long `clarion lint` run; the process start of one `clarion
lint` call is timed separately. """

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dispatcher.alerting.lint import lint_one, main
from dispatcher.policy import names
from dispatcher.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
CORPORA = sorted((ROOT / "tests" / "policy").glob("*.jsonl")) + sorted(
    (ROOT / "tests" / "policy" / "data").glob("*.jsonl")
)
REQUEST_KEYS = {"kind", "text", "language", "references", "headline", "instruction"}


def _messages() -> list[str]:
    lines = []
    for path in CORPORA:
        for line in path.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            if "kind" in case:
                lines.append(json.dumps({k: v for k, v in case.items() if k in REQUEST_KEYS}))
    return lines


def run(rounds: int) -> dict[str, float]:
    """Per-message milliseconds (CPU and wall) over the rounds, and one whole process."""
    messages = _messages()
    settings = load_settings()
    lint_one(json.loads(messages[0]), settings)  # builds the finder and reads the lexicon
    cpu, wall = [], []
    for _ in range(rounds):
        names._sentence_hits.cache_clear()
        stdin = io.StringIO("\n".join(messages) + "\n")
        started, started_cpu = time.perf_counter(), time.process_time()
        main(stdin, io.StringIO(), io.StringIO())
        cpu.append((time.process_time() - started_cpu) * 1000 / len(messages))
        wall.append((time.perf_counter() - started) * 1000 / len(messages))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "lint"], input=messages[0], text=True,
        capture_output=True, check=False,
    )
    process = (time.perf_counter() - started) * 1000
    # CPU time is what the code costs; wall time also holds whatever else the machine runs.
    return {
        "messages": len(messages),
        "cpu_ms_per_message_median": round(statistics.median(cpu), 3),
        "cpu_ms_per_message_worst": round(max(cpu), 3),
        "wall_ms_per_message_median": round(statistics.median(wall), 3),
        "wall_ms_one_message_process": round(process, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    print(json.dumps(run(parser.parse_args().rounds), indent=2))
