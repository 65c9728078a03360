"""Evaluation metrics of the papers, as plain vectorised NumPy functions on arrays of scores.

Every metric is computed with sorts and segment sums (``np.lexsort``, ``np.bincount``,
``scipy.stats.rankdata`` along an axis), never a Python loop over pairs, users or customers, and is
checked against scikit-learn or a brute-force reference in ``tests/metrics``. Ties are never a
full win: they count as the expected value under a random tie-break (1/2 in AUC, 1/n_tied in FITB,
tie averaging in NDCG, pro rata at top-k cut-offs). An undefined value (e.g. a user without a
negative) is NaN and is skipped in averages; an average with nothing defined is NaN with a
``RuntimeWarning``. Bad input raises ``ValueError`` naming the argument and what was received.

- ``ranking_auc``: per-user AUC of VBPR / DVBPR (eq. 3), its cold-item variant, and a chunked
  version from user and item embeddings.
- ``customer_level``: PSA-Net's customer-level and overall ROC AUC, AUPRC, Recall@50%, Precision@10.
- ``ndcg``: NDCG@k equal to ``sklearn.metrics.ndcg_score`` (PAN).
- ``choice``: fill-in-the-blank accuracy (PAN) and triplet accuracy (complete the look).
- ``pointing``: the pointing game (peak and top-10% share of a saliency map inside a region,
  against the region's area as chance), scored on the planted world's attribute regions.
- ``retrieval``: same-category precision@k and an approximate index's recall@k against exact search.
- ``subspace_attention``: how often a customer's largest learned subspace attention weight lands
  on their planted dominant subspace, after matching learned to planted subspaces, against chance.

This folder imports only NumPy and SciPy (no TensorFlow), so it can score anything, anywhere.
"""

from tfrec_fashion.metrics.choice import fitb_accuracy, triplet_accuracy
from tfrec_fashion.metrics.customer_level import (
    customer_level_metrics,
    customer_metric_table,
    metric_names,
    overall_metrics,
)
from tfrec_fashion.metrics.ndcg import ndcg_at_k, ndcg_at_k_values
from tfrec_fashion.metrics.pointing import pointing_game, pointing_game_values
from tfrec_fashion.metrics.ranking_auc import (
    cold_items,
    per_user_auc,
    per_user_auc_from_embeddings,
    per_user_auc_values,
    per_user_auc_values_from_embeddings,
)
from tfrec_fashion.metrics.retrieval import precision_at_k, recall_at_k_overlap
from tfrec_fashion.metrics.subspace_attention import attention_subspace_accuracy

__all__ = [
    "cold_items",
    "customer_level_metrics",
    "customer_metric_table",
    "fitb_accuracy",
    "metric_names",
    "ndcg_at_k",
    "ndcg_at_k_values",
    "overall_metrics",
    "per_user_auc",
    "per_user_auc_from_embeddings",
    "per_user_auc_values",
    "per_user_auc_values_from_embeddings",
    "pointing_game",
    "pointing_game_values",
    "precision_at_k",
    "recall_at_k_overlap",
    "attention_subspace_accuracy",
    "triplet_accuracy",
]
