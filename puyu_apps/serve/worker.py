"""Background workers that run queued jobs from the SQLite job store."""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from ..errors import PuyuError
from .artifacts import artifacts_dir, write_artifacts
from .runtime import mask_strings

log = logging.getLogger("puyu_apps.serve.jobs")


class JobWorkers:
    def __init__(self, state: Any, n: int = 1, poll_s: float = 0.2):
        self.state = state
        self.n, self.poll_s = n, poll_s
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        recovered = self.state.jobs.recover()
        if recovered:
            log.info("re-queued %d job(s) left running by a previous process", recovered)
        for i in range(self.n):
            t = threading.Thread(target=self._loop, name=f"puyu-job-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self.wake.set()
        for t in self.threads:
            t.join(timeout)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            job = self.state.jobs.claim_next()
            if job is None:
                self.wake.wait(self.poll_s)
                self.wake.clear()
                continue
            self._run(job)

    def _run(self, job: Any) -> None:
        state = self.state
        store = state.jobs
        inputs = job.input_path if job.input_path else job.text
        try:
            result = state.runtime.run_pipeline(job.vertical, inputs, job.params,
                                                on_progress=lambda p: store.progress(job.id, p))
            filt = state.runtime.filter_for(job.vertical)
            verdict = filt.check_output(result.to_text())
            data = result.model_dump(mode="json")
            if not verdict.allowed:
                store.finish(job.id, {"blocked": True, "reason": verdict.reason, "message": verdict.text})
            else:
                if filt.policy.enabled and filt.policy.mask_output_pii:
                    from ..safety import mask_pii

                    data = mask_strings(data, lambda s: mask_pii(s, filt.policy.pii_kinds))
                write_artifacts(result, data, artifacts_dir(state, job.id))  # report, page images, audio
                store.finish(job.id, data)
            log.info("job %s (%s) done", job.id, job.vertical)
        except PuyuError as exc:
            store.fail(job.id, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # the worker must survive a failing vertical
            log.error("job %s (%s) failed: %s", job.id, job.vertical, traceback.format_exc())
            store.fail(job.id, f"internal error: {type(exc).__name__}: {exc}")
