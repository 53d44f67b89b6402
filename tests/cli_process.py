"""Running the `cohorts` command as a real subprocess in tests, and finding what it left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["alive", "cohorts", "descendants", "env_for"]


def env_for(data_dir: Path, **variables: object) -> dict[str, str]:
    """The test process's environment minus any COHORTS_* variable, plus `variables`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("COHORTS_")}
    env["COHORTS_DATA_DIR"] = str(data_dir)
    env.update({f"COHORTS_{key.upper()}": str(value) for key, value in variables.items()})
    return env


def cohorts(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `cohorts ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
