"""Logs: what a job says while it runs, through the standard ``logging`` module.

Every module logs under the ``bench`` logger; nothing prints progress lines itself. ``setup``
is called once per process that runs jobs: by the command line (stderr), by each local
worker, and by each SLURM task (stdout, so that SLURM's log file has the lines). A job adds
two more destinations while it runs (``job_log``): its log file beside its record,
``<results>/<suite>/<job_id>.log`` (appended: a resumed job continues it), and optionally
TensorBoard event files under ``<dir>/<suite>/<job_id>/``.

What is logged (like nanoGPT's ``iter N: loss ...``): one line every ``recipe.log_every`` steps
(step, loss, learning rate, gradient norm, images per second), one per evaluation, and one per
phase of a job (plasticity and its seconds, trainable parameters, best step, test accuracy).
A line that carries numbers has them in ``extra={"metrics": {...}, "step": n}`` too, which is
what the TensorBoard handler writes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

LOGGER = "bench"
FORMAT = "%(asctime)s %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
TENSORBOARD_EXTRA = "pip install 'vit-plasticity-bench[tensorboard]'"


class JobLog(logging.LoggerAdapter):
    """A logger whose lines start with ``job <id>:``; keeps each call's ``extra``."""

    def process(self, msg, kwargs):
        kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}
        return f"job {self.extra['job']}: {msg}", kwargs


def job_logger(job_id: str, name: str = "job") -> JobLog:
    return JobLog(logging.getLogger(f"{LOGGER}.{name}"), {"job": job_id})


class _Console(logging.StreamHandler):
    """stderr or stdout as they are when a line is written (tests and tools replace them),
    written with tqdm.write so that progress bars and lines do not garble each other."""

    def __init__(self, stdout: bool):
        super().__init__()
        self.stdout = stdout

    @property
    def stream(self):
        return sys.stdout if self.stdout else sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; ours is dynamic
        pass

    def emit(self, record: logging.LogRecord) -> None:
        # through tqdm.write: a line above this process's progress bars, not through them
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never stop a job
            self.handleError(record)


def setup(level: int = logging.INFO, stdout: bool = False) -> None:
    """The console destination of this process's ``bench`` lines (stderr, or stdout), at
    ``level``: INFO prints the lines, WARNING only problems (while a progress bar is shown,
    the lines go to each job's log file only). Calling it again replaces it."""
    log = logging.getLogger(LOGGER)
    log.setLevel(logging.INFO)
    log.propagate = False  # an application that configured the root logger gets no doubles
    for h in [h for h in log.handlers if getattr(h, "_bench_console", False)]:
        log.removeHandler(h)
    handler = _Console(stdout)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    handler._bench_console = True
    log.addHandler(handler)


@contextlib.contextmanager
def job_log(path: Path, tensorboard: Path | None = None) -> Iterator[None]:
    """While a job runs: its lines also go to ``path`` (appended) and, with ``tensorboard``,
    its numbers to event files in that folder."""
    log = logging.getLogger(LOGGER)
    if log.getEffectiveLevel() > logging.INFO:  # not set up (a library call): still log
        log.setLevel(logging.INFO)
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")]
    handlers[0].setFormatter(logging.Formatter(FORMAT, DATEFMT))
    if tensorboard is not None:
        handlers.append(TensorBoardHandler(tensorboard))
    for h in handlers:
        h.setLevel(logging.INFO)
        log.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()


def check_tensorboard() -> str | None:
    """Why TensorBoard event files cannot be written here (None: they can)."""
    if importlib.util.find_spec("tensorboard") is None:
        return f"--tensorboard needs the tensorboard package, not installed: {TENSORBOARD_EXTRA}"
    return None


class TensorBoardHandler(logging.Handler):
    """Writes the numbers that log lines carry (``extra={"metrics": ..., "step": ...}``) as
    TensorBoard scalars. ``writer`` is for tests; by default torch's SummaryWriter, made on
    the first line that carries numbers."""

    def __init__(self, folder: Path, writer=None):
        super().__init__()
        self.folder, self.writer = Path(folder), writer

    def emit(self, record: logging.LogRecord) -> None:
        metrics = getattr(record, "metrics", None)
        if not metrics:
            return
        try:
            if self.writer is None:
                problem = check_tensorboard()
                if problem:
                    raise RuntimeError(problem)
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(self.folder))
            for tag, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(tag, value, getattr(record, "step", 0))
        except Exception:  # noqa: BLE001 - logging must never stop a job
            self.handleError(record)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        super().close()
