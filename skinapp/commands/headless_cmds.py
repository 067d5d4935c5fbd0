"""`skinapp batch` and `skinapp watch`: the terminal side of headless mode.

The work is in `skinapp.headless`; here are the flags, the progress bar, the summary on
stdout, the signals (first Ctrl-C or SIGTERM stops cleanly; a second Ctrl-C aborts) and the
exit codes: 0 all analysed, 1 some images failed, 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from skinapp.config import ANALYSES

logger = logging.getLogger(__name__)

EXIT_USAGE = 2


def register(sub: Any) -> None:
    _register_batch(sub)
    _register_watch(sub)


def _common(parser: argparse.ArgumentParser, default_analysis: str) -> None:
    parser.add_argument(
        "--analysis",
        default=default_analysis,
        choices=ANALYSES,
        metavar="KIND",
        help=f"one of {', '.join(ANALYSES)} (default: {default_analysis})",
    )
    parser.add_argument("--body-location", help="sent with every image (e.g. arm, back)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        metavar="N",
        help="jobs on the stack at once (default: twice the worker slots + 1)",
    )


def _register_batch(sub: Any) -> None:
    p = sub.add_parser("batch", help="analyse a folder of images and write a report")
    p.add_argument("folder", type=Path, metavar="FOLDER", help="the folder of images")
    p.add_argument(
        "--out",
        type=Path,
        metavar="FILE.csv|FILE.json",
        help="the report; run again with the same --out to resume "
        "(default: FOLDER/skinapp-report.csv)",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="include sub-folders")
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only files whose name or relative path matches (repeatable)",
    )
    p.add_argument("--summary", type=Path, metavar="FILE", help="also write the summary page here")
    _common(p, "batch-skin-check")
    p.set_defaults(handler=run_batch_command)


def _register_watch(sub: Any) -> None:
    p = sub.add_parser("watch", help="analyse each new image dropped into a hot folder")
    p.add_argument("folder", type=Path, metavar="FOLDER", help="the folder of images")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="results land here: <image name>.json and results.csv",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long a file's size must hold still before it is read",
    )
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="between scans")
    _common(p, "binary-classify")
    p.set_defaults(handler=run_watch_command)


# --- signals ----------------------------------------------------------------------------
@contextmanager
def stop_on_signals(stop: Any, message: str) -> Iterator[None]:
    """First SIGINT/SIGTERM sets `stop` (a lock-free `StopFlag`); a second SIGINT aborts.

    The handler only flips the flag: printing from it could re-enter a stream the main
    thread is writing. A watcher thread tells the person that the stop is under way.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    done = threading.Event()
    threading.Thread(target=_announce_stop, args=(stop, done, message), daemon=True).start()
    saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)
        done.set()


def _announce_stop(stop: Any, done: threading.Event, message: str) -> None:
    while not done.wait(0.1):
        if stop.is_set():
            print(f"\n{message}", file=sys.stderr, flush=True)
            return


# --- progress ---------------------------------------------------------------------------
class ProgressPrinter:
    """A bar redrawn in place on a terminal; throttled plain lines anywhere else."""

    def __init__(self, stream: TextIO) -> None:
        from skinapp.headless.progress import PlainThrottle

        self.stream = stream
        self.tty = stream.isatty()
        self.throttle = PlainThrottle()
        self._drawn = False

    def __call__(self, progress: Any) -> None:
        from skinapp.headless.progress import bar_line, plain_line

        if self.tty:
            self.stream.write("\r" + bar_line(progress) + "\x1b[K")
            self._drawn = True
        elif self.throttle.should_emit(progress):
            self.stream.write(plain_line(progress) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _fields(args: argparse.Namespace) -> tuple[tuple[str, Any], ...]:
    return (("body_location", args.body_location),) if args.body_location else ()


#: How long a run asks for an answering worker before it warns that there is none. A stack
#: that has just started (the one `skinapp batch` starts for itself, say) counts its workers
#: as started before they answer: they are still importing torch, for a few seconds.
WORKERS_GRACE = 20.0


def _workers_answering(client: Any) -> int | None:
    """How many workers health counts; None (after a warning) when it cannot be asked."""
    from skinapp.errors import SkinappError

    try:
        return int(client.health().get("workers_available") or 0)
    except SkinappError as exc:
        print(f"skinapp: warning: health check failed: {exc}", file=sys.stderr)
        return None


@contextmanager
def warning_if_no_workers(
    client: Any, grace: float = WORKERS_GRACE, every: float = 1.0
) -> Iterator[None]:
    """Around a run: warn on stderr when no worker answers. When none does yet, ask again
    every `every` s on a thread for `grace` s (the run sends its jobs meanwhile: they wait
    in the queue either way), and warn only if none answered by then. The asking ends with
    the block, before the client is closed."""
    stop = threading.Event()

    def keep_asking() -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if stop.wait(every):
                return
            answering = _workers_answering(client)
            if answering is None or answering > 0:
                return
        if not stop.is_set():
            print(
                f"skinapp: warning: no worker has answered for {grace:.0f} s; "
                "the jobs wait in the queue until one does",
                file=sys.stderr,
                flush=True,
            )

    thread = None
    if _workers_answering(client) == 0:
        thread = threading.Thread(target=keep_asking, name="workers-check", daemon=True)
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()


def _on_stage(stage: str, message: str) -> None:
    print(f"stack: {stage}: {message}", file=sys.stderr, flush=True)


# --- batch ------------------------------------------------------------------------------
def _batch_options(args: argparse.Namespace) -> Any:
    from skinapp.headless.batch import DEFAULT_REPORT_NAME, BatchOptions

    return BatchOptions(
        folder=args.folder,
        out=args.out or args.folder / DEFAULT_REPORT_NAME,
        analysis=args.analysis,
        recursive=args.recursive,
        include=tuple(args.include),
        fields=_fields(args),
        max_in_flight=args.max_in_flight,
    )


def _print_discovery(found: Any, todo: int) -> None:
    for skipped in found.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    unique = len(found.unique())
    print(
        f"found {len(found.images)} images ({unique} distinct), skipped {len(found.skipped)} files; "
        f"{unique - todo} already in the report, {todo} to analyse",
        file=sys.stderr,
        flush=True,
    )


def run_batch_command(args: argparse.Namespace) -> int:
    from skinapp.config import get_settings
    from skinapp.errors import ConfigError
    from skinapp.headless.batch import EarlyFind, validate

    try:
        options = _batch_options(args)
        validate(options)
        settings = get_settings()
    except ConfigError as exc:
        print(f"skinapp batch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    early = EarlyFind(options, settings)  # hashes the folder while the client is imported
    try:
        result = _run_batch(settings, options, early)
    finally:
        early.cancel()  # nothing left to do when it finished; an early exit stops it
    from skinapp.headless.summary import summary_text

    page = summary_text(result.summary, str(options.out))
    print(page, end="")
    if args.summary:
        args.summary.write_text(page, encoding="utf-8")
    return result.exit_code


def _run_batch(settings: Any, options: Any, early: Any) -> Any:
    from skinapp.headless.batch import run_batch
    from skinapp.headless.connect import connect
    from skinapp.headless.stopping import StopFlag

    stop = StopFlag()
    printer = ProgressPrinter(sys.stderr)
    with (
        connect(settings, on_stage=_on_stage) as client,
        warning_if_no_workers(client),
        stop_on_signals(stop, "stopping: cancelling the jobs sent, writing a partial report"),
    ):
        try:
            return run_batch(
                client,
                settings,
                options,
                stop=stop,
                on_progress=printer,
                on_discovered=_print_discovery,
                found=early.result,
            )
        finally:
            printer.close()


# --- watch ------------------------------------------------------------------------------
def _print_record(record: Any) -> None:
    detail = record.error or " ".join(
        x for x in (record.predicted_label, record.confidence, record.risk_level, record.demo) if x
    )
    print(f"{record.status:<9} {record.path}  {detail}", flush=True)


def run_watch_command(args: argparse.Namespace) -> int:
    from skinapp.config import get_settings
    from skinapp.errors import ConfigError
    from skinapp.headless.batch import default_in_flight
    from skinapp.headless.connect import connect
    from skinapp.headless.stopping import StopFlag
    from skinapp.headless.watch import HotFolder, WatchOptions, check_watch_dirs

    try:
        check_watch_dirs(args.folder, args.out)
        settings = get_settings()
    except ConfigError as exc:
        print(f"skinapp watch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    options = WatchOptions(
        folder=args.folder,
        out_dir=args.out,
        analysis=args.analysis,
        settle=args.settle,
        interval=args.interval,
        max_in_flight=args.max_in_flight or default_in_flight(settings, args.analysis),
        batch_max_images=settings.batch_max_images,
        max_bytes=settings.max_upload_bytes,
        fields=_fields(args),
    )
    stop = StopFlag()
    with (
        connect(settings, on_stage=_on_stage) as client,
        warning_if_no_workers(client),
        stop_on_signals(stop, "stopping: cancelling running jobs"),
    ):
        print(
            f"watching {args.folder} -> {args.out} (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        HotFolder(client, options, stop=stop, on_record=_print_record).run()
    print("watch stopped", file=sys.stderr)
    return 0
