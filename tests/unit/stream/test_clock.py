"""The file clock tests use to move a worker's time."""

from __future__ import annotations

from pathlib import Path

from stream.clock import file_clock, fixed_clock, wall_clock_us


def test_file_clock_follows_the_file_and_keeps_the_last_good_value(tmp_path: Path):
    path = tmp_path / "now"
    path.write_text("1000")
    clock = file_clock(path)
    assert clock() == 1000
    path.write_text("2000\n")
    assert clock() == 2000
    path.write_text("")
    assert clock() == 2000
    path.unlink()
    assert clock() == 2000


def test_wall_clock_is_in_microseconds():
    assert 1_600_000_000_000_000 < wall_clock_us() < 4_000_000_000_000_000


def test_a_fixed_clock_answers_its_instant_every_time():
    clock = fixed_clock(1_748_736_000_000_000)
    assert {clock() for _ in range(3)} == {1_748_736_000_000_000}
