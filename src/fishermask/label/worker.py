"""The background retrain + query of ``label serve`` (run as ``python -m fishermask.label.worker``).

It runs in its own process so the web server stays responsive (and so a crash or kill of
one does not take the other's state with it); progress goes to the round's row. After the
batch is committed it goes on to estimate the new model's held-out accuracy.

One torch thread: on the 2-core machine of docs/benchmarks.md two threads made training and
the query several times *slower* whenever another process held a core (OpenMP threads wait
on each other), and one thread leaves a core to the web server.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    import torch

    from fishermask.label.project import Project

    project_dir, round_id = argv[0], int(argv[1])
    torch.set_num_threads(1)
    project = Project(project_dir)
    project.run_round(train_model=True, round_id=round_id)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a subprocess
    sys.exit(main(sys.argv[1:]))
