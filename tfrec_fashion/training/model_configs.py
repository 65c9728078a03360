"""Every model's hyper-parameters: one dataclass per model, registered by ``model.name``.

They live together in this TensorFlow-free module so that a config file is read and checked
(``tfrec-fashion train bad.yaml`` fails in a line) before TensorFlow is imported. Each field is
a constructor argument of the model its recipe builds; see that model's docstring.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from tfrec_fashion.config import Registry

MODEL_CONFIGS = Registry("model")


@MODEL_CONFIGS.register("two_tower")
@dataclasses.dataclass
class TwoTowerConfig:
    """``models.two_tower.TwoTowerRetrieval``: user-id and item-id towers, in-batch softmax."""

    name: str = "two_tower"
    embedding_dim: int = 32
    l2: float = 0.0
    temperature: Optional[float] = None
