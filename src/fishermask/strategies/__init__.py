"""Query strategies: a base class, a registry and one module per strategy.

>>> from fishermask import strategies
>>> strategies.get("entropy")
EntropyStrategy()
"""

from fishermask.strategies import (  # noqa: F401
    badge,
    bait,
    entropy,
    fishermask,
    kcenter,
    least_confidence,
    lpl,
    lplgrad,
    margin,
    random,
)
from fishermask.strategies.badge import badge_embeddings, kmeans_pp_seeding
from fishermask.strategies.base import QueryContext, ScoreStrategy, Selection, Strategy, top_k
from fishermask.strategies.entropy import entropy_scores
from fishermask.strategies.kcenter import k_center_greedy
from fishermask.strategies.least_confidence import least_confidence_scores
from fishermask.strategies.lplgrad import entropy_gradnorm_scores
from fishermask.strategies.margin import margin_scores
from fishermask.strategies.registry import available, get, register

__all__ = [
    "QueryContext",
    "ScoreStrategy",
    "Selection",
    "Strategy",
    "available",
    "badge_embeddings",
    "entropy_gradnorm_scores",
    "entropy_scores",
    "get",
    "k_center_greedy",
    "kmeans_pp_seeding",
    "least_confidence_scores",
    "margin_scores",
    "register",
    "top_k",
]
