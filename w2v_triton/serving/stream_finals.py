"""Segment finals off the chunk path: one worker thread that computes them and hands them on.

Why: a segment's final re-runs the acoustic model over the whole segment (up to
max_segment_seconds): on the 2-core CPU a 30 s pass costs about ten chunk windows. When the chunk
that closed a segment waited for it, that chunk's latency was the final's, and a stream's chunk
p99 grew with the number of segments per minute (issue 30: 2.39x from minute 0 to minute 9 of a
600 s stream, median flat). Here a chunk is answered at once, and its segments' finals follow as
responses of their own when ready (the streaming model is decoupled, so a request may get more
responses after its first, from another thread).

One thread, first in first out: a stream's finals go out in segment order, and a stream's END
(whose one response carries its own finals and must be the stream's last) queued behind them
comes after them. Jobs waiting together run as one `ChunkedRecognizer.finals` call (one
AcousticModel.run over all their segments: length buckets). The acoustic model's onnxruntime
session takes concurrent runs; the worker only reads the segment audio each job carries (a copy),
never a stream's state, so it needs no lock with the chunk path. A failure fails
that job alone (a batch that fails is computed again job by job: only the stream whose segment
caused it is told), never the worker.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from w2v_triton.serving.streaming import ChunkedRecognizer, PendingFinal

logger = logging.getLogger(__name__)

Deliver = Callable[[list[dict[str, Any]] | Exception], None]


@dataclass(frozen=True)
class _Job:
    pending: list[PendingFinal]
    deliver: Deliver


class FinalWorker:
    """Computes queued segment finals in a daemon thread and passes each job's `final` events (or
    the exception that failed them) to its `deliver` callback, in submission order."""

    def __init__(self, recognizer: ChunkedRecognizer, name: str = "segment-finals") -> None:
        self.recognizer = recognizer
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, pending: list[PendingFinal], deliver: Deliver) -> None:
        """Queue the finals of `pending` (may be empty: `deliver` then gets [] after every job
        queued before it, which is how END waits for its stream's earlier finals)."""
        self._queue.put(_Job(list(pending), deliver))

    def queued(self) -> int:
        """Jobs not yet delivered (approximate: for metrics and tests)."""
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while True:          # everything already waiting runs in the same acoustic call
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._compute(batch)
            if stop:
                return

    def _compute(self, batch: list[_Job]) -> None:
        """One acoustic call for the whole batch; when it fails, each job again on its own, so a
        failure reaches only the stream whose segment caused it (a job alone has failed already)."""
        try:
            finals = self.recognizer.finals([p for job in batch for p in job.pending])
        except Exception as exc:
            if len(batch) == 1:
                logger.exception("segment finals failed")
                self._deliver(batch[0], exc)
                return
            logger.warning("segment finals of %d streams together failed: each alone", len(batch))
            for job in batch:
                self._deliver(job, self._finals(job))
            return
        offset = 0
        for job in batch:
            self._deliver(job, finals[offset: offset + len(job.pending)])
            offset += len(job.pending)

    def _finals(self, job: _Job) -> list[dict[str, Any]] | Exception:
        try:
            return self.recognizer.finals(job.pending)
        except Exception as exc:
            logger.exception("segment finals failed")
            return exc

    @staticmethod
    def _deliver(job: _Job, result: list[dict[str, Any]] | Exception) -> None:
        try:
            job.deliver(result)
        except Exception:
            logger.exception("delivering segment finals failed")

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the jobs already queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)
