"""Label your own images: a labeling project (SQLite), headless commands and a local web page.

``fishermask label init/scan/next/add/import/train/predict/export/serve``; the guide is
docs/labeling.md. The heavy parts (torch, FastAPI) are imported by the commands.

``load_model(DIR)`` loads a model written by ``fishermask label export PROJECT --format model
--out DIR`` (:class:`fishermask.label.predict.LabelModel`: ``.predict(images)``,
``.predict_proba(images)``, ``.classes``), without the project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fishermask.label.predict import LabelModel

__all__ = ["load_model"]


def load_model(folder: Any) -> LabelModel:
    """The model exported to ``folder`` (imports torch on first use)."""
    from fishermask.label.predict import load_model as _load

    return _load(folder)
