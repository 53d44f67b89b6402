"""yamllint over every YAML file under deploy/, with deploy/.yamllint.yml."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.unit.deploy.artifacts import DEPLOY, ROOT, deploy_yaml_files

_CONFIG = YamlLintConfig(file=str(DEPLOY / ".yamllint.yml"))


def test_every_deploy_area_has_yaml_to_lint() -> None:
    folders = {p.relative_to(DEPLOY).parts[0] for p in deploy_yaml_files()}
    assert {"docker-compose.yml", "k8s", "prometheus", "grafana"} <= folders


@pytest.mark.parametrize("path", deploy_yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_is_lint_clean(path: Path) -> None:
    problems = list(linter.run(path.read_text(), _CONFIG, str(path)))
    assert problems == [], "\n".join(f"{path.name}:{p.line}:{p.column} {p.desc} ({p.rule})" for p in problems)


def test_linter_catches_a_real_problem() -> None:
    """The config is not so lax that nothing fails: a duplicated key is an error."""
    problems = list(linter.run("---\na: 1\na: 2\n", _CONFIG))
    assert [p.rule for p in problems] == ["key-duplicates"]
