"""The background work of ``label serve``, run as ``python -m fishermask.label.worker``: a
retrain + query (``PROJECT ROUND_ID``), or a label check started from the page (``check
PROJECT CHECK_ID``).

It runs in its own process so the web server stays responsive (and so a crash or kill of
one does not take the other's state with it); progress goes to the round's (the check's) row.
After a round's batch is committed it goes on to estimate the new model's held-out accuracy.
A check writes its results only with its end, in one transaction
(:meth:`~fishermask.label.store.Store.finish_check`): killed, it leaves a running row whose
process is gone, which the next reader marks interrupted, and nothing else.

One torch thread: on the 2-core machine of docs/benchmarks.md two threads made training and
the query several times *slower* whenever another process held a core (OpenMP threads wait
on each other), and one thread leaves a core to the web server.
"""

from __future__ import annotations

import signal
import sys
from typing import Any


def _stopped(signum: int, frame: Any) -> None:
    """SIGTERM (the server stopping, Ctrl-C there): end the check as interrupted."""
    raise KeyboardInterrupt("stopped: the labeling server was stopped")


def main(argv: list[str]) -> int:
    import torch

    from fishermask.label.project import Project

    torch.set_num_threads(1)
    if argv[0] == "check":
        from fishermask.label.check import run_check

        signal.signal(signal.SIGTERM, _stopped)
        project = Project(argv[1])
        check_id = int(argv[2])
        try:  # run_check records its progress for the page
            run_check(project, check_id=check_id)
        except KeyboardInterrupt:
            return 130  # recorded as interrupted by run_check
        except Exception:  # noqa: BLE001 - recorded as failed (its message) by run_check
            import traceback

            traceback.print_exc()  # worker.log
            return 1
        return 0
    project_dir, round_id = argv[0], int(argv[1])
    project = Project(project_dir)
    project.run_round(train_model=True, round_id=round_id)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a subprocess
    sys.exit(main(sys.argv[1:]))
