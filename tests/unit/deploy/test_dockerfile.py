"""deploy/Dockerfile: python:3.11-slim, the project installed with pip, no Java, the `cohorts` entrypoint.

No Docker engine here, so the file is parsed: instructions, the packages it copies against the ones
pyproject.toml installs, and the ports it exposes against the settings' defaults.
"""

from __future__ import annotations

import re
import tomllib

from cohorts.settings import Settings
from tests.unit.deploy.artifacts import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def test_both_stages_are_python_3_11_slim_and_nothing_installs_java() -> None:
    stages = _stages()
    assert [stage[0][1].split()[0] for stage in stages] == ["python:3.11-slim", "python:3.11-slim"]
    assert not re.search(r"\b(java|jdk|jre|openjdk)\b", DOCKERFILE.read_text(), re.IGNORECASE)


def test_runtime_installs_the_project_with_pip_from_the_built_wheels() -> None:
    build, runtime = _stages()
    assert any(i == "RUN" and "pip wheel" in args and args.rstrip().endswith(" .") for i, args in build)
    assert any(i == "RUN" and "pip install" in args and "/wheels/" in args for i, args in runtime)
    assert ("COPY", "--from=build /wheels /wheels") in runtime


def test_every_installed_package_is_copied_into_the_build() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {source for i, args in _stages()[0] if i == "COPY" for source in args.split()[:-1]}
    assert packages | {"pyproject.toml", "README.md"} <= copied
    allowed = {line.lstrip("!").rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    assert packages | {"pyproject.toml", "README.md"} <= allowed


def test_runtime_runs_as_a_user_with_settings_for_containers() -> None:
    runtime = _stages()[1]
    env = " ".join(args for i, args in runtime if i == "ENV")
    assert "COHORTS_DATA_DIR=/data" in env and "COHORTS_API_HOST=0.0.0.0" in env
    assert ("USER", "10001") in runtime
    assert ("ENTRYPOINT", '["cohorts"]') in runtime


def test_exposed_ports_are_the_default_api_and_worker_ports() -> None:
    defaults = {str(Settings.model_fields[name].default) for name in ("api_port", "worker_web_port")}
    [exposed] = [args for i, args in _stages()[1] if i == "EXPOSE"]
    assert set(exposed.split()) == defaults
