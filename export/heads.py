"""Serving heads on the export side: for each head of ``contract.HEADS``, how its parts become a
SavedModel module, which warm-up requests TF Serving replays, and what the description says.

A model family serves through one head, named by its parts' ``HEAD``
(``tfrec_fashion.training.serving_parts``); ``writer.export_parts`` looks the head up here and
never branches on a model. Adding a family that fits an existing head changes nothing here;
adding a head is one entry in :data:`HEADS` (its module, its warm-up, its description), its
signatures in ``contract.py`` and its parts dataclass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.training.serving_parts import (CompatibilityParts, GenerationParts, LookParts,
                                                  OutfitParts, Parts, RetrievalParts)
from tfrec_fashion_export.compatibility import CompatibilityModule, takes_customer_embedding
from tfrec_fashion_export.design import DesignModule
from tfrec_fashion_export.look import LookModule
from tfrec_fashion_export.module import RecommenderModule
from tfrec_fashion_export.outfits import OutfitModule
from tfrec_fashion_serving import contract


@dataclasses.dataclass(frozen=True)
class ExportHead:
    """How one head is exported.

    Args:
        signatures: the head's contract (``contract.Head``).
        build: (parts, index, index_params) -> the SavedModel's root module, whose
            ``signatures()`` gives every signature of ``signatures`` plus serving_default.
        warmup: parts -> signature name -> inputs, one request per signature.
        describe: parts -> facts for ``assets.extra/tfrec_fashion.json``.
        indexes: the ``index`` choices this head accepts.
        index_report: (module, parts, min_recall) -> the description of its approximate
            index (parameters, recall@10 against exact, printed; raising below min_recall),
            for a head whose index is not the retrieval head's; None: the writer's.
    """

    signatures: contract.Head
    build: Callable[[Any, str, dict | None], tf.Module]
    warmup: Callable[[Any], dict[str, dict[str, np.ndarray]]]
    describe: Callable[[Any], dict[str, Any]]
    indexes: tuple[str, ...]
    index_report: Callable[[Any, Any, float | None], dict] | None = None


def _retrieval_warmup(parts: RetrievalParts) -> dict[str, dict[str, np.ndarray]]:
    new_customer = parts.new_customer
    return contract.warmup_inputs(list(parts.user_ids), list(parts.item_ids),
                                  parts.embedder.input_spec if parts.embedder else None,
                                  new_customer.rating_range if new_customer else None,
                                  {question: answers[0] for question, answers
                                   in new_customer.survey.items() if answers}
                                  if new_customer and new_customer.survey else None)


def _retrieval_description(parts: RetrievalParts) -> dict[str, Any]:
    described = {"embed_item_input": None if parts.embedder is None
                 else parts.embedder.input_name,
                 "cold_start": "unknown user ids are served the mean trained user vector"}
    if parts.new_customer is not None:
        described["new_customer"] = {"rating_range": list(parts.new_customer.rating_range),
                                     "query": parts.new_customer.description}
        if parts.new_customer.survey:  # what survey_questions / survey_answers accept
            described["new_customer"]["survey"] = parts.new_customer.survey
    return described


def _compatibility_warmup(parts: CompatibilityParts) -> dict[str, dict[str, np.ndarray]]:
    """A real item whose category has partners, and one of those partners; where the export
    takes customer vectors, the first customer's and the mean one's."""
    vectors = (np.stack([parts.user_vectors[0], parts.user_vectors.mean(axis=0)])
               if takes_customer_embedding(parts) else None)
    categories = parts.item_categories
    for category, partners in sorted(parts.complements.items()):
        candidates = np.flatnonzero(np.isin(categories, partners))
        if len(candidates):
            item = parts.item_ids[np.flatnonzero(categories == category)[0]]
            return contract.pair_warmup_inputs(list(parts.user_ids), item,
                                               parts.item_ids[candidates[0]], len(candidates),
                                               vectors)
    return contract.pair_warmup_inputs(list(parts.user_ids), parts.item_ids[0],
                                       parts.item_ids[-1], 1, vectors)


def _compatibility_description(parts: CompatibilityParts) -> dict[str, Any]:
    return {"complements": parts.complements, "personalised": parts.scorer.user_dim > 0,
            "cold_start": "unknown customers are scored with the mean customer's vector"}


def _outfit_warmup(parts: OutfitParts) -> dict[str, dict[str, np.ndarray]]:
    """An outfit of each slot's first item, its first slot blanked."""
    slots = parts.item_slots()
    outfit = [parts.item_ids[np.flatnonzero(slots == index)[0]]
              for index in range(len(parts.slots))]
    return contract.outfit_warmup_inputs(list(parts.user_ids), outfit, parts.slots[0],
                                         int((slots == 0).sum()))


def _outfit_description(parts: OutfitParts) -> dict[str, Any]:
    return {"slots": parts.slots, "slot_categories": parts.slot_categories,
            "personalised": parts.scorer.user_dim > 0,
            "cold_start": "unknown customers are scored with the mean customer's vector"}


def _look_warmup(parts: LookParts) -> dict[str, dict[str, np.ndarray]]:
    """An item of the first category that has complements (and, with an image path, an image
    of that category)."""
    completed = sorted(category for category, partners in parts.complements.items() if partners)
    category = completed[0] if completed else parts.item_categories[0]
    item = parts.item_ids[np.flatnonzero(parts.item_categories == category)[0]]
    return contract.look_warmup_inputs(item, category, parts.image_shape, len(parts.item_ids),
                                       complements=bool(completed))


def _look_description(parts: LookParts) -> dict[str, Any]:
    return {"complements": parts.complements, "image_shape": parts.image_shape,
            "similar_dim": int(parts.similar_vectors.shape[1]),
            "style_dim": int(parts.style_vectors.shape[1]),
            "scores": "cosine of L2-normalised vectors (similar: similar_vectors; "
                      "complementary: style_vectors)"}


def _generation_warmup(parts: GenerationParts) -> dict[str, dict[str, np.ndarray]]:
    """One design of the first category for a known customer and an unknown one."""
    return contract.design_warmup_inputs(list(parts.user_ids), parts.categories[0], 1)


def _generation_description(parts: GenerationParts) -> dict[str, Any]:
    return {"categories": parts.categories, "image_shape": parts.image_shape,
            "latent_dim": parts.gan.latent_dim,
            "phi_shape": parts.phi.input_spec.shape.as_list()[1:],
            "design": {"restarts": parts.settings.restarts, "steps": parts.settings.steps,
                       "learning_rate": parts.settings.learning_rate,
                       "max_n": parts.settings.restarts,
                       "command_line_eta": parts.settings.eta},  # a request's eta: default 1
            "scores": "theta_u . Phi(image) (DVBPR's preference); objective = scores - eta "
                      "(D(image, c) - 1)^2 (eq. 9)",
            "cold_start": "unknown customers are designed for with the mean customer's theta"}


HEADS: dict[str, ExportHead] = {
    RetrievalParts.HEAD: ExportHead(
        contract.RETRIEVAL, lambda parts, index, params: RecommenderModule(parts, index, params),
        _retrieval_warmup, _retrieval_description, ("brute_force", "partitioned", "scann")),
    CompatibilityParts.HEAD: ExportHead(
        contract.COMPATIBILITY, lambda parts, index, params: CompatibilityModule(parts),
        _compatibility_warmup, _compatibility_description, ("brute_force",)),
    OutfitParts.HEAD: ExportHead(
        contract.OUTFIT, lambda parts, index, params: OutfitModule(parts, index, params),
        _outfit_warmup, _outfit_description, ("brute_force", "hamming"),
        lambda module, parts, min_recall: module.index_report(parts, min_recall)),
    LookParts.HEAD: ExportHead(
        contract.LOOK, lambda parts, index, params: LookModule(parts, index, params),
        _look_warmup, _look_description, ("brute_force", "partitioned"),
        lambda module, parts, min_recall: module.index_report(parts, min_recall)),
    GenerationParts.HEAD: ExportHead(
        contract.GENERATION, lambda parts, index, params: DesignModule(parts),
        _generation_warmup, _generation_description, ("brute_force",)),
}


def head_of(parts: Parts) -> ExportHead:
    """The head that exports ``parts``."""
    if parts.HEAD not in HEADS:
        raise ValueError(f"no export head {parts.HEAD!r}; known: {sorted(HEADS)}")
    return HEADS[parts.HEAD]
