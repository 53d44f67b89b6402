"""publish: every benchmark keeps its section in the run directory, and appends it unless told not to."""

from __future__ import annotations

from bench.report import REPORT_HEADER, publish


def test_the_section_is_kept_and_appended_under_the_header_once(tmp_path):
    report = tmp_path / "docs" / "benchmarks.md"
    publish("## run 1\n", tmp_path, report)
    publish("## run 2\n", tmp_path, report)
    assert (tmp_path / "result.md").read_text() == "## run 2\n"
    assert report.read_text() == REPORT_HEADER + "\n## run 1\n" + "\n## run 2\n"


def test_without_a_report_only_the_run_directory_gets_the_section(tmp_path, capsys):
    publish("## quiet\n", tmp_path, None)
    assert (tmp_path / "result.md").read_text() == "## quiet\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "result.md"]
    assert "appended" not in capsys.readouterr().out
