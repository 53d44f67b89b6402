"""Where the deploy artifacts are and how to read them (shared by the tests in this folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEPLOY", "ROOT", "deploy_yaml_files", "load_documents"]

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def deploy_yaml_files() -> list[Path]:
    """Every YAML file we ship under deploy/ (not the git-ignored Kafka jar cache)."""
    files = [*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")]
    return sorted(p for p in files if ".cache" not in p.relative_to(DEPLOY).parts)


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
