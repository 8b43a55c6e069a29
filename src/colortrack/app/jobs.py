"""Long work (frame extraction, propagation, colorization, exports) runs one job at a time in a
background thread; requests read its progress. A failing job reports one line and leaves every
file it had finished (each written atomically) and the user's annotations untouched."""

from __future__ import annotations

import secrets
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from colortrack.errors import InputError


class Busy(InputError):
    """Another job is running."""


class Cancelled(Exception):
    pass


@dataclass
class Job:
    """state: running, done, failed or cancelled; results: (frame index, confidence or None) in
    the order they were finished."""

    kind: str
    total: int
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    done: int = 0
    state: str = "running"
    message: str = ""
    results: list[tuple[int, float | None]] = field(default_factory=list)
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def advance(self, index: int, confidence: float | None = None) -> None:
        """One more frame finished; raises Cancelled when the user asked to stop."""
        self.results.append((index, confidence))
        self.done = len(self.results)
        if self.cancel_requested.is_set():
            raise Cancelled

    def snapshot(self, since: int = 0) -> dict:
        results = self.results[since:]
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "done": since + len(results),
            "total": self.total,
            "message": self.message,
            "frames": [[index, confidence] for index, confidence in results],
        }


class JobRunner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, Job] = {}

    def start(self, kind: str, total: int, work: Callable[[Job], str | None]) -> Job:
        """Run ``work(job)`` in a thread; what it returns becomes the job's message."""
        with self._lock:
            running = [job for job in self.jobs.values() if job.state == "running"]
            if running:
                raise Busy(running[0].kind, "another job is running: wait for it or cancel it")
            job = Job(kind, total)
            self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, work), name=f"job-{kind}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[Job], str | None]) -> None:
        try:
            job.message = work(job) or ""
            job.state = "done"
        except Cancelled:
            job.message, job.state = "cancelled; the frames finished so far are kept", "cancelled"
        except InputError as err:
            job.message, job.state = str(err), "failed"
        except Exception as err:  # a bug: the user gets one line, the log the traceback
            traceback.print_exc(file=sys.stderr)
            job.message, job.state = f"internal error ({type(err).__name__}: {err}); your annotations are saved", "failed"
