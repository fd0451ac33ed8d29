"""Test-wide settings: one torch thread (faster and steadier on a shared 2-core machine); the
strategy and model registries restored after every test, so a strategy or model a test
registers (--import, register_model, @register) does not leak into tests that enumerate them."""

import pytest
import torch

torch.set_num_threads(1)


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
