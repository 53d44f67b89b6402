"""The API read benchmark's load generator: a separate process issuing GETs over keep-alive sockets.

`python -m bench.api_load_client --url http://host:port --key phx_... --paths paths.json
--concurrency 4 --duration 20 --warmup 3 --result out.json`

`concurrency` connections each send one request, wait for the whole response, then send the
next (closed loop), taking the paths of `paths.json` in turn. Requests finished during the first
`warmup` seconds are not recorded. The result holds every recorded latency (ms), the request
count, the statuses seen and the measured seconds.

A minimal HTTP/1.1 client on asyncio streams rather than httpx: on a 2-core machine the load
generator competes with the api for CPU, and httpx costs several times more per request. It
reads `Content-Length` and chunked bodies; anything else counts as an error.

Never: retries a failed request or drops a slow one; an error is counted, its time recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["ResponseHead", "parse_head", "run_load"]


class ResponseHead:
    """Status line and the framing headers of one response."""

    __slots__ = ("chunked", "close", "content_length", "status")

    def __init__(self, status: int, content_length: int | None, chunked: bool, close: bool) -> None:
        self.status = status
        self.content_length = content_length
        self.chunked = chunked
        self.close = close


def parse_head(head: bytes) -> ResponseHead:
    """Parse `HTTP/1.1 200 OK\\r\\nname: value...\\r\\n\\r\\n`; ValueError on anything else."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {lines[0]!r}")
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value
        elif name == "connection":
            close = value == "close"
    return ResponseHead(int(parts[1]), length, chunked, close)


async def _read_body(reader: asyncio.StreamReader, head: ResponseHead) -> int:
    if head.chunked:
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            total += size
            if size == 0:
                return total
    if head.content_length is None:
        raise ValueError("response without Content-Length or chunked framing")
    await reader.readexactly(head.content_length)
    return head.content_length


async def _worker(
    host: str, port: int, requests: list[bytes], start: int, stop_at: float, record_from: float, out: dict
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    index = start
    try:
        while time.monotonic() < stop_at:
            request = requests[index % len(requests)]
            index += 1
            sent = time.perf_counter()
            try:
                writer.write(request)
                head = parse_head(await reader.readuntil(b"\r\n\r\n"))
                await _read_body(reader, head)
                status = head.status
            except (ValueError, OSError, asyncio.IncompleteReadError) as exc:
                status = type(exc).__name__
                head = None
            elapsed_ms = (time.perf_counter() - sent) * 1000
            if time.monotonic() >= record_from:
                out["latencies"].append(elapsed_ms)
                out["statuses"][str(status)] += 1
            if head is None or head.close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def run_load(url: str, key: str, paths: list[str], concurrency: int, duration_s: float, warmup_s: float) -> dict:
    """Run the closed loop; returns {latencies_ms, requests, statuses, seconds}."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n\r\n".encode() for path in paths
    ]
    out: dict = {"latencies": [], "statuses": Counter()}
    now = time.monotonic()
    record_from, stop_at = now + warmup_s, now + warmup_s + duration_s
    step = max(1, len(requests) // concurrency)
    workers = [_worker(host, port, requests, i * step, stop_at, record_from, out) for i in range(concurrency)]
    await asyncio.gather(*workers)
    return {
        "latencies_ms": out["latencies"],
        "requests": len(out["latencies"]),
        "statuses": dict(out["statuses"]),
        "seconds": time.monotonic() - record_from,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_load_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--paths", type=Path, required=True, help="JSON list of request paths, taken in turn")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = json.loads(args.paths.read_text())
    result = asyncio.run(run_load(args.url, args.key, paths, args.concurrency, args.duration, args.warmup))
    tmp = args.result.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(args.result)


if __name__ == "__main__":
    main()
