"""The one settings object (design §9). Each entrypoint builds it once and passes it down.

Nothing else in the project reads `os.environ`. Tests construct `Settings(...)` directly.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Validated at start-up; an error names the bad `COHORTS_*` variable."""

    model_config = SettingsConfigDict(env_prefix="COHORTS_", frozen=True, extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port] of an existing cluster; unset = start a local broker",
    )
    topic_prefix: str = Field(default="", description="prefix of every topic name")
    partitions: int = Field(default=16, ge=1, le=1024, description="partition count of co-partitioned topics")
    data_dir: Path = Field(default=Path("cohorts-data"), description="RocksDB state, local broker data and logs")
    api_host: str = Field(default="127.0.0.1")
    api_port: int = Field(default=8000, ge=0, le=65535)
    local_kafka_port: int = Field(default=9092, ge=1, le=65535, description="port of the local broker")
    worker_web_host: str = Field(default="127.0.0.1", description="worker's metrics/health interface")
    worker_web_port: int = Field(default=6066, ge=0, le=65535, description="worker's metrics/health port")
    log_format: str = Field(default="text", pattern="^(text|json)$")
    api_fetch_min_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        description="api: the broker answers the views' fetch once it holds this many bytes, or after the wait",
    )
    api_fetch_wait_ms: int = Field(
        default=20, ge=0, le=500, description="api: longest the broker holds the views' fetch (added to a write)"
    )

    @field_validator("topic_prefix")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("may contain only letters, digits, '.', '_' and '-'")
        return value

    @property
    def bootstrap(self) -> str:
        """The cluster to talk to: the configured one, else the local broker."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.local_kafka_port}"

    @property
    def uses_local_kafka(self) -> bool:
        return self.kafka_bootstrap is None
