"""The retrieval index inside an export: exact TFRS BruteForce, or the approximate
``PartitionedTopK``, each with the category filter and exclusions of ``recommend``.

Both answer ``index(queries, k, categories, excluded) -> (item rows, scores)`` with the same
padding, so ``module.RecommenderModule`` takes either (``make_index``).

``FilteredBruteForce`` answers "the best k items for these query vectors, only in category c,
never these items" with a ``tfrs.layers.factorized_top_k.BruteForce`` index, so the export uses
TFRS's own layer (and a later approximate layer drops in where BruteForce goes).

The category filter lives in the index itself, as extra coordinates. With C categories, the
index holds each item as [v_i, -BIG * onehot(c_i)] and a query for category c is
[q, 1 - onehot(c)] (for "any category": [q, 0]). Then

    [q, 1 - onehot(c)] . [v_i, -BIG onehot(c_i)] = q . v_i - BIG [c_i != c]

so items of the category keep their exact score (the extra products are exact zeros) and the
others drop by BIG, below every real score; they come back only when the category has fewer than
k items, and are then cut as padding. A query for a set of categories, a bool mask m of them,
is [q, 1 - m] (the complete-the-look head asks for an item's complementary categories so).
Exclusions (items the caller already showed, or the user already bought) are applied after
retrieval: the index returns k + M candidates for M excluded items, the excluded ones are
removed (``layers.row_sets.in_row_sets``: a sorted search, not a [B, k + M, M] comparison, so
wide exclusions cost memory linear in M), and the first k of the rest are kept in rank order.

Rows are padded to K = max(k) with id -1 / score -inf where a row asks for fewer items or fewer
items qualify.
"""

from __future__ import annotations

import time

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec_fashion.layers.partitioned_top_k import PartitionedTopK
from tfrec_fashion.layers.row_sets import in_row_sets
from tfrec_fashion_export.ann_index import recall_at_k

INDEXES = ("brute_force", "partitioned")
RECALL_BATCH = 100
# A partitioned export without n_probe probes at least enough partitions for this recall@10 on
# held-out queries (the default n_probe gave 0.24 on an unclustered catalogue).
DEFAULT_TARGET_RECALL = 0.9
TUNING_QUERIES = 500
TIMING_BATCH = 256
TIMING_TIE = 0.9
# Real scores must stay far above -BIG / 2 (checked at construction against the vectors' norms).
BIG = 1e9


class FilteredBruteForce(tf.Module):
    """Exact top-k by inner product over item vectors, with a category filter and exclusions.

    Args:
        item_vectors: float32 [N, D].
        item_categories: int [N] in [0, C), the category index of each item.
        n_categories: C.
        max_query_norm: a bound on the norm of any query vector, so that BIG provably exceeds
            every real score.
    """

    def __init__(self, item_vectors: np.ndarray, item_categories: np.ndarray, n_categories: int,
                 max_query_norm: float, name: str = "filtered_brute_force"):
        super().__init__(name=name)
        item_vectors = np.asarray(item_vectors, np.float32)
        bound = float(np.linalg.norm(item_vectors, axis=1).max()) * float(max_query_norm)
        if not np.isfinite(bound) or bound >= BIG / 10:
            raise ValueError(f"scores up to {bound:.3g} are too large for the category filter "
                             f"(BIG = {BIG:g}); the model's vectors have exploded")
        self.n_items = int(item_vectors.shape[0])
        self.n_categories = int(n_categories)
        penalty = -BIG * np.eye(n_categories, dtype=np.float32)[np.asarray(item_categories)]
        self.brute_force = tfrs.layers.factorized_top_k.BruteForce(k=10)
        self.brute_force.index(tf.constant(np.concatenate([item_vectors, penalty], axis=1)),
                               tf.range(self.n_items, dtype=tf.int32))

    def __call__(self, queries: tf.Tensor, k: tf.Tensor, categories: tf.Tensor,
                 excluded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Top-k per row.

        Args:
            queries: float32 [B, D].
            k: int32 [B], each in [1, N] (checked by the caller).
            categories: int32 [B], a category index or -1 for any; or bool [B, C], the
                categories each row may return.
            excluded: int32 [B, M] item indices never to return (-1 entries ignored).

        Returns:
            (item indices int32 [B, K] (-1 = padding), scores float32 [B, K] (-inf = padding)),
            K = max(k), best first.
        """
        top = tf.reduce_max(k)
        n_excluded = tf.shape(excluded)[1]
        fetch = tf.minimum(top + n_excluded, self.n_items)
        if categories.dtype == tf.bool:  # a mask of the allowed categories
            filter_columns = 1.0 - tf.cast(categories, tf.float32)
        else:
            wanted = tf.one_hot(categories, self.n_categories)  # all zeros for -1 (any)
            filter_columns = tf.where(categories[:, None] >= 0, 1.0 - wanted, 0.0)
        scores, indices = self.brute_force(tf.concat([queries, filter_columns], axis=1), k=fetch)
        hit = in_row_sets(indices, excluded)
        usable = tf.logical_and(tf.logical_not(hit), scores > -BIG / 2)
        # Usable candidates first, each group in rank order (a stable sort on position).
        position = tf.range(fetch)[None, :] + tf.where(usable, 0, fetch)
        order = tf.argsort(position, axis=1, stable=True)[:, :top]
        indices = tf.gather(indices, order, batch_dims=1)
        scores = tf.gather(scores, order, batch_dims=1)
        # fetch >= K because k <= N, so every row already has K columns.
        return first_k_per_row(indices, scores, k, tf.gather(usable, order, batch_dims=1))


def first_k_per_row(indices: tf.Tensor, scores: tf.Tensor, k: tf.Tensor,
                    usable: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Keeps the first k[b] columns of row b where ``usable``; the rest become -1 / -inf."""
    keep = tf.logical_and(usable, tf.range(tf.shape(indices)[1])[None, :] < k[:, None])
    return tf.where(keep, indices, -1), tf.where(keep, scores, -np.inf)


class FilteredPartitioned(tf.Module):
    """Approximate top-k with the same interface as ``FilteredBruteForce``.

    A ``PartitionedTopK`` over the item rows whose partitions never mix categories, so a
    category filter probes only that category's partitions; exclusions are removed from its
    exactly re-scored candidates. Returned scores are exact inner products; recall is what
    ``recall_at_10`` in the export's description says.

    Args:
        item_vectors: float32 [N, D].
        item_categories: int [N] in [0, C).
        **params: ``PartitionedTopK`` arguments (n_partitions, n_probe, rerank, quantization,
            seed).
    """

    def __init__(self, item_vectors: np.ndarray, item_categories: np.ndarray, **params):
        super().__init__(name="filtered_partitioned")
        self.n_items = len(item_vectors)
        self.layer = PartitionedTopK(**params).index(
            item_vectors, np.arange(self.n_items, dtype=np.int32), item_categories)

    def describe(self) -> dict:
        """The built index's parameters, JSON-able."""
        layer = self.layer
        return {"kind": "partitioned", "n_partitions": layer.built_n_partitions,
                "n_probe": layer.built_n_probe, "rerank": layer.built_rerank,
                "quantization": layer.quantization, "seed": layer.seed,
                "largest_partition": int(layer.partition_sizes.max()),
                "scanned_share": round(layer.scanned_share, 4)}

    def __call__(self, queries: tf.Tensor, k: tf.Tensor, categories: tf.Tensor,
                 excluded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """As ``FilteredBruteForce.__call__``."""
        scores, indices = self.layer.search(queries, tf.reduce_max(k), categories, excluded)
        return first_k_per_row(indices, scores, k, scores > -np.inf)


def make_index(kind: str, item_vectors: np.ndarray, item_categories: np.ndarray,
               n_categories: int, max_query_norm: float, **params) -> tf.Module:
    """The export's index: "brute_force" (exact) or "partitioned" (approximate, ``params``)."""
    if kind == "brute_force":
        if params:
            raise ValueError(f"Index parameters are for the partitioned index; the brute-force "
                             f"index takes none. Received: {params}")
        return FilteredBruteForce(item_vectors, item_categories, n_categories, max_query_norm)
    if kind == "partitioned":
        return FilteredPartitioned(item_vectors, item_categories, **params)
    raise ValueError(f"index must be one of {INDEXES}. Received: {kind!r}")


def describe_scan(described: dict) -> str:
    """A partitioned index's ``describe()`` in words: partitions, probes, share, scan."""
    return (f"{described['n_partitions']} partitions, {described['n_probe']} probed "
            f"({described['scanned_share']:.1%} of the items), {described['quantization']} scan, "
            f"{described['rerank']} re-ranked")


def refuse_low_recall(recall: dict, min_recall: float | None, what: str,
                      remedy: str = "probe more partitions (n_probe)") -> None:
    """Raises when any recall measured by :func:`recall_against_brute_force` is below
    ``min_recall`` (None: never); ``what`` names the index in the message, ``remedy`` what
    raises its recall."""
    worst = min(value for key, value in recall.items() if key not in ("k", "queries"))
    if min_recall is not None and worst < min_recall:
        raise ValueError(f"{what}'s recall@{recall['k']} {worst:.3f} is below "
                         f"min_recall={min_recall}; {remedy} or lower min_recall. Nothing was "
                         "exported.")


def recall_against_brute_force(index: tf.Module, item_vectors: np.ndarray,
                               item_categories: np.ndarray, n_categories: int,
                               queries: np.ndarray, seen=None, k: int = 10,
                               n_queries: int = 1000, seed: int = 0) -> dict:
    """recall@k of ``index`` against ``FilteredBruteForce`` on a sample of query vectors.

    The index is built from item vectors only, so any query vectors (the users') are held out
    from it. Measured three ways: any category; each query filtered to a category drawn at
    random from the catalogue (as often as the category's items); and, with ``seen`` (a CSR
    matrix [queries, items]), leaving out what each user bought, as ``recommend`` does by
    default. The last is the hardest: the top-k after exclusions reaches further down the
    ranking, where fewer of the exact answers lie in the probed partitions.

    Returns:
        {"k", "queries", "any_category", "one_category"[, "seen_excluded"]}: recalls in [0, 1].
    """
    rng = np.random.default_rng(seed)
    queries = np.asarray(queries, np.float32)
    picked = rng.choice(len(queries), min(n_queries, len(queries)), replace=False)
    sample = queries[picked]
    max_norm = float(np.linalg.norm(sample, axis=1).max())
    exact = FilteredBruteForce(item_vectors, item_categories, n_categories, max_norm)
    k = min(k, len(item_vectors))
    result = {"k": k, "queries": len(sample)}
    any_category = np.full(len(sample), -1, np.int32)
    nothing = np.full((len(sample), 1), -1, np.int32)
    cases = {"any_category": (any_category, nothing),
             "one_category": (np.asarray(item_categories, np.int32)[
                 rng.integers(0, len(item_vectors), len(sample))], nothing)}
    if seen is not None:
        rows = seen[picked]
        width = max(1, int(np.diff(rows.indptr).max(initial=0)))
        excluded = np.full((len(sample), width), -1, np.int32)
        for row in range(len(sample)):
            bought = rows.indices[rows.indptr[row]:rows.indptr[row + 1]]
            excluded[row, :len(bought)] = bought
        cases["seen_excluded"] = (any_category, excluded)
    for name, (categories, exclusions) in cases.items():
        found, wanted = [], []
        for start in range(0, len(sample), RECALL_BATCH):  # exact scores: [batch, N] at a time
            rows = slice(start, start + RECALL_BATCH)
            inputs = (tf.constant(sample[rows]), tf.fill([len(sample[rows])], k),
                      tf.constant(categories[rows]), tf.constant(exclusions[rows]))
            found.append(index(*inputs)[0].numpy())
            wanted.append(exact(*inputs)[0].numpy())
        result[name] = round(recall_at_k(np.concatenate(found), np.concatenate(wanted)), 4)
    return result


def tune_partitioned(index: FilteredPartitioned, item_vectors: np.ndarray,
                     item_categories: np.ndarray, n_categories: int, queries: np.ndarray,
                     seen=None, target: float = DEFAULT_TARGET_RECALL, only_raise: bool = False,
                     seed: int = 0) -> dict:
    """Sets the partitioned index's ``n_probe`` and ``rerank`` to the fastest setting whose
    recall@10 against brute force meets ``target`` on ``queries`` (the worst of the cases
    :func:`recall_against_brute_force` measures, so many exclusions probe in proportion).

    Probes are tried in doubling steps up to every partition (with a quantised scan, at the
    built re-rank depth and at four times it); at the first doubling that meets the target, the
    fewest probes that do are found by bisection from the last that fell short (more probes only
    cost more). The fastest setting that met it by measured queries/s is kept (speeds within
    10% count as equal, then the fewest probes win), else the one of highest recall.
    ``only_raise``: probes below the built ``n_probe`` are not tried and the fewest probes that
    meet the target are kept (the default export only ever probes more).

    Args:
        index: the built index (its layer's search parameters are changed in place).
        item_vectors, item_categories, n_categories, seen: as ``recall_against_brute_force``.
        queries: float32 [Q, D] held-out query vectors to tune on (the export's customers').
        target: the recall@10 to meet, in (0, 1].
        only_raise: never probe fewer partitions than the index was built with.
        seed: the query sample's seed.

    Returns:
        {"target", "met", "chosen": {"n_probe", "rerank"}, "curve": [{"n_probe", "rerank",
        "scanned_share", "recall", "queries_per_second"}, ...]} in the order measured.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target_recall must be in (0, 1]. Received: {target}")
    layer = index.layer
    built_probe, built_rerank = layer.built_n_probe, layer.built_rerank
    doublings = [2 ** i for i in range(int(np.ceil(np.log2(layer.built_n_partitions))) + 1)]
    probes = sorted({min(p, layer.built_n_partitions) for p in doublings} | {built_probe})
    if only_raise:
        probes = [probe for probe in probes if probe >= built_probe]
    reranks = [built_rerank] if layer.quantization == "none" else [built_rerank,
                                                                   4 * built_rerank]
    sample = np.asarray(queries, np.float32)[:TUNING_QUERIES]

    def measure(probe: int, rerank: int) -> dict:
        layer.set_search_params(probe, rerank)
        recall = recall_against_brute_force(index, item_vectors, item_categories, n_categories,
                                            sample, seen, seed=seed, n_queries=TUNING_QUERIES)
        worst = min(value for key, value in recall.items() if key not in ("k", "queries"))
        return {"n_probe": layer.built_n_probe, "rerank": rerank,
                "scanned_share": round(layer.scanned_share, 4), "recall": worst,
                "queries_per_second": round(_queries_per_second(index, sample), 1)}

    met, chosen, curve = search_recall_target(measure, probes, reranks, target, only_raise)
    layer.set_search_params(chosen["n_probe"], chosen["rerank"])
    return {"target": target, "met": met,
            "chosen": {"n_probe": chosen["n_probe"], "rerank": chosen["rerank"]},
            "curve": curve}


def search_recall_target(measure, probes: list, reranks: list, target: float,
                         only_raise: bool = False) -> tuple[bool, dict, list]:
    """The search of :func:`tune_partitioned`, for any index with a probe count and a re-rank
    depth (``benchmarks/topk_catalogue.py`` also runs it on ScaNN's leaves and reorder).

    Args:
        measure: ``measure(probe, rerank)`` sets the index so and returns a point
            {"n_probe", "rerank", "recall", "queries_per_second", ...}.
        probes: the doubling steps, ascending; more probes never lower recall.
        reranks: the re-rank depths to try, each with its own doubling and bisection.
        target: the recall to meet.
        only_raise: stop at the first re-rank depth that meets it, keeping the fewest probes.

    Returns:
        (met, the chosen point, every point in the order measured).
    """
    curve = []

    def meets(probe: int, rerank: int) -> bool:
        curve.append(measure(probe, rerank))
        return curve[-1]["recall"] >= target

    for rerank in reranks:
        below = None  # the most probes seen to fall short
        for probe in probes:
            if meets(probe, rerank):
                # Bisect between the last doubling that fell short and this one: the fewest.
                low, high = below, probe
                while low is not None and high - low > 1:
                    middle = (low + high) // 2
                    if meets(middle, rerank):
                        high = middle
                    else:
                        low = middle
                break
            below = probe
        if only_raise and any(point["recall"] >= target for point in curve):
            break  # the fewest probes that meet it at the built re-rank depth
    met = [point for point in curve if point["recall"] >= target]
    if met and not only_raise:
        # The fastest, with speeds within TIMING_TIE of it counted as equal (timings on a busy
        # machine are that noisy) and then the fewest probes and the shallower re-rank.
        fastest = max(point["queries_per_second"] for point in met)
        met = [point for point in met if point["queries_per_second"] >= TIMING_TIE * fastest]
    chosen = (min(met, key=lambda point: (point["n_probe"], point["rerank"])) if met
              else max(curve, key=lambda point: (point["recall"], -point["n_probe"])))
    return bool(met), chosen, curve


def _queries_per_second(index: tf.Module, queries: np.ndarray, k: int = 10) -> float:
    """Queries/s of ``index`` answering ``queries`` (any category, no exclusions) in batches of
    ``TIMING_BATCH``, the faster of two passes (the first also traces)."""
    best = np.inf
    for _ in range(2):
        started = time.perf_counter()
        for start in range(0, len(queries), TIMING_BATCH):
            batch = queries[start:start + TIMING_BATCH]
            index(tf.constant(batch), tf.fill([len(batch)], k),
                  tf.fill([len(batch)], -1), tf.fill([len(batch), 1], -1))[0].numpy()
        best = min(best, time.perf_counter() - started)
    return len(queries) / max(best, 1e-9)
