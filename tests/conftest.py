"""Test-wide settings: one torch thread (faster and steadier on a shared 2-core machine); the
strategy and model registries restored after every test, so a strategy or model a test
registers (--import, register_model, @register) does not leak into tests that enumerate them;
no variable of the environment that makes rich or typer draw for a terminal; the same
Hypothesis examples on every machine; the data cache in a temporary folder, not the user's."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)

# Hypothesis draws new examples on every run unless it recognises the CI service (it reads a
# list of variables) and replays what failed before from the local .hypothesis folder, so a run
# here and one on CI did not test the same examples: a bad draw could fail CI alone. The same
# examples everywhere (derandomize, no database), and no time limits (deadline, too_slow) that
# a slow or loaded machine can exceed. `pytest --hypothesis-profile=default` explores anew.
settings.register_profile(
    "fishermask",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("fishermask")

# CI services set variables that make the CLI's output differ from what a pipe gets:
# FORCE_COLOR / TTY_COMPATIBLE / TTY_INTERACTIVE make rich colour and draw progress bars
# (`error:` came out as "\x1b[1;31merror:\x1b[0m"), GITHUB_ACTIONS and PY_COLORS make typer
# force a terminal for its help and usage errors, COLUMNS / TERMINAL_WIDTH change where rich
# wraps. Dropped here, before the CLI modules are imported (typer reads them at import), so
# the tests, and the processes they start, see the output of a plain pipe wherever they run.
for _name in (
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "PY_COLORS",
    "GITHUB_ACTIONS",
    "COLUMNS",
    "LINES",
    "TERMINAL_WIDTH",
):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _registries():
    import fishermask.models as models
    from fishermask.strategies import registry

    strategies = dict(registry._REGISTRY)
    builders = dict(models._BUILDERS)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(strategies)
    models._BUILDERS.clear()
    models._BUILDERS.update(builders)


@pytest.fixture(autouse=True, scope="session")
def _data_cache(tmp_path_factory: pytest.TempPathFactory):
    """``$FISHERMASK_CACHE`` in this session's temporary folder: a test that loads data without
    a ``cache_dir`` wrote decoded images and features to ``~/.cache/fishermask`` (and read
    whatever an earlier run left there). The processes the tests start inherit it; a test
    that sets or drops the variable with ``monkeypatch`` still does so."""
    from fishermask.data.cache import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("fishermask-cache"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before
