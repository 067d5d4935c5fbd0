"""Usage errors exit with 2 before anything is sent or started."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from skinapp.cli import main
from skinapp.commands.headless_cmds import ProgressPrinter
from skinapp.headless.progress import Progress


def test_batch_of_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_batch_report_must_be_csv_or_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "r.xlsx")]) == 2
    assert ".csv or .json" in capsys.readouterr().err


def test_unknown_analysis_is_refused_by_the_parser(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(tmp_path), "--analysis", "mri"])
    assert exc.value.code == 2


def test_watch_needs_out_and_a_separate_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["watch", str(tmp_path)])
    assert exc.value.code == 2
    assert main(["watch", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "watched folder" in capsys.readouterr().err


def test_batch_resume_from_a_broken_report_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    out.write_text("[truncated")
    assert main(["batch", str(tmp_path), "--out", str(out)]) == 2
    assert "cannot resume" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    tty, pipe = _Terminal(), io.StringIO()
    for stream in (tty, pipe):
        printer = ProgressPrinter(stream)
        for done in (0, 1, 1, 2):
            printer(Progress(total=2, done=done, failed=0, elapsed=1.0 + done))
        printer.close()
    assert tty.getvalue().count("\r") == 4 and tty.getvalue().endswith(
        "2/2 done  0 failed  0.7 img/s  ETA 00:00\x1b[K\n"
    )
    assert pipe.getvalue().splitlines() == [
        "progress: 0/2 done, 0 failed, 0.00 images/s, ETA --:--",
        "progress: 1/2 done, 0 failed, 0.50 images/s, ETA 00:02",
        "progress: 2/2 done, 0 failed, 0.67 images/s, ETA 00:00",
    ]
