"""The active-learning pool and oracles."""

from fishermask.al.pool import Oracle, Pool, SimulatedOracle

__all__ = ["Oracle", "Pool", "SimulatedOracle"]
