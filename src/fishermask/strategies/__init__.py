"""Query strategies: a base class, a registry and one module per strategy.

>>> from fishermask import strategies
>>> strategies.get("kcenter")
KCenterStrategy()
"""

from fishermask.fisher import entropy_gradnorm_scores
from fishermask.strategies import (  # noqa: F401
    badge,
    bait,
    bald,
    batchbald,
    entropy,
    fishermask,
    kcenter,
    least_confidence,
    lpl,
    lplgrad,
    margin,
    probcover,
    random,
    typiclust,
)
from fishermask.strategies.badge import badge_embeddings, kmeans_pp_seeding
from fishermask.strategies.bald import bald_scores
from fishermask.strategies.base import (
    NonFiniteScores,
    QueryContext,
    ScoreStrategy,
    Selection,
    Strategy,
    StrategyError,
    check_finite,
    check_selection,
    stochastic_top_k,
    top_k,
)
from fishermask.strategies.batchbald import batchbald_select
from fishermask.strategies.contract import check_strategy
from fishermask.strategies.entropy import entropy_scores
from fishermask.strategies.kcenter import k_center_greedy
from fishermask.strategies.least_confidence import least_confidence_scores
from fishermask.strategies.margin import margin_scores
from fishermask.strategies.probcover import probcover_select, purity_radius, radius_graph
from fishermask.strategies.registry import available, get, register
from fishermask.strategies.typiclust import typicality, typiclust_select

__all__ = [
    "NonFiniteScores",
    "QueryContext",
    "ScoreStrategy",
    "Selection",
    "Strategy",
    "StrategyError",
    "available",
    "badge_embeddings",
    "bald_scores",
    "check_finite",
    "check_selection",
    "check_strategy",
    "batchbald_select",
    "entropy_gradnorm_scores",
    "entropy_scores",
    "get",
    "k_center_greedy",
    "kmeans_pp_seeding",
    "least_confidence_scores",
    "margin_scores",
    "probcover_select",
    "purity_radius",
    "radius_graph",
    "register",
    "stochastic_top_k",
    "top_k",
    "typicality",
    "typiclust_select",
]
