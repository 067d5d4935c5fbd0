"""Hot-folder scanning and state, with an injected clock: no stack, no sleeping."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from skinapp.client import Client
from skinapp.errors import ConfigError
from skinapp.headless.watch import HotFolder, WatchOptions, check_watch_dirs
from skinapp.headless.watch_state import STATE_NAME, Entry, WatchState
from tests.headless.folders import write
from tests.utils.images import lesion_jpeg


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "in").mkdir()
    return tmp_path / "in", tmp_path / "out"


def _hot(folders: tuple[Path, Path], clock: Clock, settle: float = 2.0) -> HotFolder:
    # the client is never called by scan(); nothing listens on port 9
    client = Client("http://127.0.0.1:9", None)
    return HotFolder(client, WatchOptions(folders[0], folders[1], settle=settle), clock=clock)


def test_a_growing_file_is_ready_only_after_it_holds_still(folders: tuple[Path, Path]) -> None:
    clock, data = Clock(), lesion_jpeg()
    hot = _hot(folders, clock)
    target = folders[0] / "slow.jpg"
    target.write_bytes(data[:1000])
    assert hot.scan() == []
    clock.now += 3
    with target.open("ab") as fh:
        fh.write(data[1000:])
    assert hot.scan() == []  # changed since the last look: the clock starts again
    clock.now += 1.5
    assert hot.scan() == []
    clock.now += 1.0
    assert hot.scan() == ["slow.jpg"]


def test_a_jpeg_without_its_end_marker_waits_longer(folders: tuple[Path, Path]) -> None:
    clock = Clock()
    hot = _hot(folders, clock)
    write(folders[0] / "cut.jpg", lesion_jpeg()[:2000])
    write(folders[0] / "whole.jpg", lesion_jpeg())
    hot.scan()
    clock.now += 2.5
    assert hot.scan() == ["whole.jpg"]
    clock.now += 8  # 5 x settle: a file that never completes is analysed (and fails) anyway
    assert "cut.jpg" in hot.scan()


def test_handled_files_are_not_ready_again_unless_replaced(folders: tuple[Path, Path]) -> None:
    clock = Clock()
    path = write(folders[0] / "a.jpg", lesion_jpeg())
    st = path.stat()
    state = WatchState.load(folders[1])
    state.add(Entry("a.jpg", st.st_size, st.st_mtime_ns, "f" * 64, "SUCCESS", "a.jpg.json"))
    hot = _hot(folders, clock)  # loads the state written above, as a restart would
    hot.scan()
    clock.now += 3
    assert hot.scan() == []
    path.write_bytes(lesion_jpeg(seed=7))  # a new photo under the same name
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    hot.scan()
    clock.now += 3
    assert hot.scan() == ["a.jpg"]


def test_hidden_and_partial_names_are_ignored(folders: tuple[Path, Path]) -> None:
    clock = Clock()
    for name in (".a.jpg", "b.jpg.part", "c.jpg.crdownload", "d.tmp"):
        write(folders[0] / name, lesion_jpeg())
    hot = _hot(folders, clock)
    hot.scan()
    clock.now += 10
    assert hot.scan() == []


def test_state_file_survives_a_torn_line_and_is_compacted(tmp_path: Path) -> None:
    state = WatchState.load(tmp_path)
    state.add(Entry("a.jpg", 1, 1, "a" * 64, "SUCCESS", "a.jpg.json"))
    state.add(Entry("a.jpg", 2, 2, "b" * 64, "FAILURE", "a.jpg.json"))
    state.add(Entry("n.jpg", 3, 3, "", "SKIPPED", "n.jpg.json"))
    with (tmp_path / STATE_NAME).open("a") as fh:
        fh.write('{"name": "torn.jpg", "si')
    again = WatchState.load(tmp_path)
    assert set(again.entries) == {"a.jpg", "n.jpg"}
    assert again.is_done("a.jpg", 2, 2) and not again.is_done("a.jpg", 1, 1)
    assert set(again.by_sha) == {"a" * 64, "b" * 64}
    lines = (tmp_path / STATE_NAME).read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["a.jpg", "n.jpg"]


def test_thousands_of_handled_files_scan_quickly(folders: tuple[Path, Path]) -> None:
    clock = Clock()
    folders[1].mkdir()
    with (folders[1] / STATE_NAME).open("w") as fh:  # one write, not 3000 fsyncs
        for i in range(3000):
            path = write(folders[0] / f"{i:05d}.jpg", b"x")
            st = path.stat()
            entry = Entry(path.name, st.st_size, st.st_mtime_ns, "", "SKIPPED", "")
            fh.write(json.dumps(entry.__dict__) + "\n")
    write(folders[0] / "new.jpg", lesion_jpeg())
    hot = _hot(folders, clock)
    started = time.perf_counter()
    hot.scan()
    clock.now += 3
    assert hot.scan() == ["new.jpg"]
    assert time.perf_counter() - started < 2.0  # two scans of 3001 files; ~20 ms is typical


def test_out_dir_must_not_be_the_watched_folder(folders: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError):
        check_watch_dirs(folders[0], folders[0])
    with pytest.raises(ConfigError):
        check_watch_dirs(folders[0] / "missing", folders[1])


def test_a_file_the_stack_could_not_take_is_tried_again_later(folders: tuple[Path, Path]) -> None:
    write(folders[0] / "a.jpg", lesion_jpeg())
    write(folders[0] / "notes.jpg", b"not a photo")
    client = Client("http://127.0.0.1:9", None)  # the API is down
    options = WatchOptions(folders[0], folders[1], settle=2.0, retry_for=0)
    hot = HotFolder(client, options, clock=Clock())
    folders[1].mkdir()
    hot.process(["a.jpg", "notes.jpg"])
    assert set(hot.state.entries) == {"notes.jpg"}  # the bad file is handled for good
    assert json.loads((folders[1] / "notes.jpg.json").read_text())["status"] == "SKIPPED"
    assert not (folders[1] / "a.jpg.json").exists()
    restarted = _hot(folders, Clock())
    restarted.scan()
    restarted.clock.now += 3  # type: ignore[attr-defined]
    assert restarted.scan() == ["a.jpg"]
