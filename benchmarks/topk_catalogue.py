"""Benchmark: top-10 retrieval over large catalogues at matched recall (1,000,000 x 64 and
100,000 x 128 by default). Our ``PartitionedTopK`` (approximate, stock TensorFlow ops only, so it
serves in the stock TF Serving image) against the ScaNN pybind searcher kept beside the
SavedModel (when ScaNN is installed) and the exact baselines: TFRS BruteForce (the index a stock
SavedModel serves) and a NumPy brute force (matmul + argpartition, the top-k a practitioner
writes first); all measured in the same run on the same data.

    .venv/bin/python benchmarks/topk_catalogue.py [--shapes 1000000x64 100000x128]
        [--catalogue clustered random learned] [--quantizations bfloat16 none int8]
        [--targets 0.9 0.95] [--rerank-factors 1 4] [--tuning-queries 500] [--no-scann]
        [--tiny]

For each catalogue and recall@10 target, each approximate index is tuned on held-out tuning
queries to its cheapest setting that reaches the target (``export.index.search_recall_target``,
the export's own search: probes in doubling steps, then bisection to the fewest that meet it,
at each re-rank depth, keeping the fastest by measured queries/s): ``PartitionedTopK``'s
``n_probe`` (and ``rerank`` for a quantised scan), ScaNN's ``leaves_to_search`` (and
``reorder``) on one searcher built once. Each chosen setting is then timed on separate
evaluation queries at batch sizes 1 and 256: queries/s, the median time per call, the recall@10
reached there, and the throughput ratio to BruteForce and to ScaNN at the same target and batch.
"not reachable" means the sweep (up to every partition / leaf) never met the target.

Catalogues: "clustered" is a Gaussian mixture (2,000 centres); "random" is i.i.d. normal, the
worst case for any partitioned index (no neighbourhoods); "learned" holds real trained
embeddings: the item vectors of a two-tower model (``models.two_tower``, its recipe) trained on
the planted synthetic world's large preset (4,000 customers x 10,000 items), scaled up to the
catalogue size by jittered copies, queried by the model's customer vectors (see
``learned_catalogue``). The trained vectors are cached under the data home
(``$TFREC_FASHION_HOME``, ``cache/topk_catalogue/``), keyed by their settings.

``--tiny`` runs tiny shapes, few queries and a tiny world trained for one epoch, in seconds
(``tests/test_benchmark_topk_catalogue.py``), so the script cannot rot.
"""

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np

# Before TensorFlow: Keras 2 for TFRS, and an installed scann no longer breaks importing TFRS.
import tfrec_fashion  # noqa: F401

# isort: split
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec_fashion.data.synthetic import SyntheticWorldConfig
from tfrec_fashion.data.wheels import data_home
from tfrec_fashion.layers.partitioned_top_k import QUANTIZATIONS, PartitionedTopK
from tfrec_fashion_export.ann_index import build_ann_index, recall_at_k
from tfrec_fashion_export.index import search_recall_target
from tfrec_fashion_serving.ann import AnnIndex, import_scann_pybind

K = 10
# Jittered copies of a trained vector are displaced by noise of norm JITTER x the median
# distance between a trained vector and its nearest trained neighbour: copies of one item then
# stay nearer each other than to other items' vectors, but not identical, so the scaled-up
# catalogue keeps the trained vectors' neighbourhoods without inventing new ones.
JITTER = 0.5
SCANN_REORDER = 200  # ScaNN's default (export/ann_index.py), x each --rerank-factors
# Full run: tuning queries, evaluation calls (batch 1, batch 256) for exact and approximate
# methods; --tiny: fewer.
SIZES = {"full": {"tuning": 500, "exact_calls": (40, 3), "approximate_calls": (300, 4),
                  "world": "large", "epochs": 10},
         "tiny": {"tuning": 256, "exact_calls": (10, 1), "approximate_calls": (50, 1),
                  "world": "tiny", "epochs": 1}}
BATCHES = (1, 256)


def make_catalogue(kind, n_items, dim, n_queries, rng, sizes=None, seed=0):
    """Items [N, D], queries [Q, D] (float32) and a line saying how they were made; ``sizes``
    (the run's preset sizes) and ``seed`` are read by the learned catalogue only."""
    if kind == "random":
        return (rng.standard_normal((n_items, dim), dtype=np.float32),
                rng.standard_normal((n_queries, dim), dtype=np.float32), "i.i.d. normal")
    if kind == "learned":
        if sizes is None:
            raise ValueError("the learned catalogue needs the run's sizes (its world preset)")
        return learned_catalogue(n_items, dim, n_queries, rng, sizes, seed)
    centres = rng.standard_normal((2000, dim), dtype=np.float32)
    def draw(n):
        return centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal(
            (n, dim), dtype=np.float32)
    return draw(n_items), draw(n_queries), "Gaussian mixture, 2,000 centres"


def trained_vectors(dim, sizes, seed):
    """(item vectors [I, D], customer vectors [U, D], test AUC, seconds to train) of a
    two-tower model trained on the planted world's preset, cached in the data home."""
    key = f"two_tower-{sizes['world']}-d{dim}-e{sizes['epochs']}-s{seed}"
    path = data_home() / "cache" / "topk_catalogue" / f"{key}.npz"
    if path.exists():
        with np.load(path) as cached:
            return (cached["items"], cached["users"], float(cached["auc"]),
                    float(cached["seconds"]))
    from tfrec_fashion.training import harness  # pylint: disable=import-outside-toplevel
    from tfrec_fashion.training.model_configs import TwoTowerConfig
    from tfrec_fashion.training.recipes.two_tower import TwoTowerRecipe
    from tfrec_fashion.training.run_config import TrainConfig

    began = time.perf_counter()
    train = TrainConfig(epochs=sizes["epochs"], batch_size=512, learning_rate=0.1,
                        optimizer="adagrad", deterministic=False, verbose=0)
    harness.set_seeds(seed, train.deterministic)
    recipe = TwoTowerRecipe(TwoTowerConfig(embedding_dim=dim, l2=1e-4), train, seed)
    recipe.prepare(SyntheticWorldConfig.preset(sizes["world"], seed=seed).build())
    model = recipe.build_model()
    model.compile(optimizer=harness.make_optimizer(train))
    model.fit(recipe.datasets()[0], epochs=train.epochs, verbose=0)
    items, users = recipe.item_vectors(model), recipe.user_vectors(model)
    auc = float(recipe.auc(model))  # test split
    seconds = time.perf_counter() - began
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, items=items, users=users, auc=auc, seconds=seconds)
    partial.replace(path)
    return items, users, auc, seconds


def jittered_copies(vectors, n, rng):
    """``n`` rows: ``vectors`` repeated in turn (in a random order once there are enough),
    each displaced by Gaussian noise of expected norm JITTER x the median nearest-neighbour
    distance among ``vectors``; the noise scale is returned too."""
    vectors = np.asarray(vectors, np.float32)
    sample = vectors[rng.choice(len(vectors), min(1000, len(vectors)), replace=False)]
    distances = (np.square(sample).sum(1)[:, None] - 2 * sample @ vectors.T
                 + np.square(vectors).sum(1)[None, :])
    distances[distances < 1e-9] = np.inf  # the row itself (and exact duplicates)
    nearest = float(np.median(np.sqrt(distances.min(axis=1))))
    sigma = JITTER * nearest / np.sqrt(vectors.shape[1])
    rows = np.arange(n) % len(vectors)
    rng.shuffle(rows)
    noise = rng.standard_normal((n, vectors.shape[1]), dtype=np.float32)
    return vectors[rows] + np.float32(sigma) * noise, sigma


def learned_catalogue(n_items, dim, n_queries, rng, sizes, seed):
    """A trained model's item vectors scaled to ``n_items`` by jittered copies, and its
    customer vectors as queries (distinct customers while there are enough, else jittered
    copies as well)."""
    items, users, auc, seconds = trained_vectors(dim, sizes, seed)
    catalogue, item_sigma = jittered_copies(items, n_items, rng)
    if n_queries <= len(users):
        queries, user_sigma = users[rng.choice(len(users), n_queries, replace=False)], 0.0
    else:
        queries, user_sigma = jittered_copies(users, n_queries, rng)
    return catalogue, queries, (
        f"two-tower item vectors ({len(items):,} items x {dim}, {sizes['world']} planted "
        f"world, test AUC {auc:.3f}, trained in {seconds:.0f} s, cached) as "
        f"{n_items / len(items):.0f} jittered copies each (noise {JITTER} x the median "
        f"nearest-neighbour distance, sigma {item_sigma:.3g}); queries: {len(users):,} "
        "customers' vectors"
        + (f", jittered (sigma {user_sigma:.3g})" if user_sigma else ""))


def exact_top_k(items, queries):
    """The exact top-K rows of ``items`` for each query (NumPy, 256 queries at a time)."""
    search = numpy_top_k(items)
    return np.concatenate([search(queries[start:start + 256])
                           for start in range(0, len(queries), 256)])


def numpy_top_k(items):
    def search(queries):
        scores = queries @ items.T
        best = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1)
        return np.take_along_axis(best, order, axis=1)
    return search


def tfrs_top_k(items):
    index = tfrs.layers.factorized_top_k.BruteForce(k=K)
    index.index(tf.constant(items), tf.range(len(items)))
    call = tf.function(lambda q: index(q, k=K)[1],
                       input_signature=[tf.TensorSpec([None, items.shape[1]], tf.float32)])
    return lambda queries: call(queries).numpy()


def partitioned_top_k(index, n_probe, rerank):
    """``PartitionedTopK`` at ``n_probe`` and ``rerank``, one traced tf.function."""
    index.set_search_params(n_probe, rerank)
    call = tf.function(lambda q: index(q, k=K)[1],
                       input_signature=[tf.TensorSpec([None, index.dim], tf.float32)])
    call = call.get_concrete_function()  # traced now, with these settings
    return lambda queries: call(tf.constant(queries)).numpy()


def scann_top_k(searcher, leaves, reorder):
    """The ScaNN pybind searcher at ``leaves`` searched and ``reorder`` re-scored, one batch
    on one thread, no filters."""
    def search(queries):
        ids, _ = searcher.search_batched(queries, final_num_neighbors=K,
                                         pre_reorder_num_neighbors=max(K, reorder),
                                         leaves_to_search=leaves)
        return ids
    return search


def measure(search, queries, batch, n_calls):
    """(queries/s, median seconds per call, ids found) over ``n_calls`` calls of ``batch``."""
    search(queries[:batch])  # warm-up (tf.function tracing, caches)
    times, found = [], []
    for start in range(0, n_calls * batch, batch):
        begin = time.perf_counter()
        found.append(search(queries[start:start + batch]))
        times.append(time.perf_counter() - begin)
    return n_calls * batch / sum(times), statistics.median(times), np.concatenate(found)


def doublings(n):
    """1, 2, 4, ... up to and including ``n``."""
    return sorted({min(2 ** i, n) for i in range(int(np.ceil(np.log2(max(n, 1)))) + 1)})


def tuned(make_search, probes, reranks, tuning, exact, targets):
    """{target: (met, chosen point)} from ``search_recall_target`` on the tuning queries;
    each setting is measured once (recall and batch-256 queries/s in one timed pass) and shared
    between the targets."""
    points = {}

    def measure_setting(probe, rerank):
        if (probe, rerank) not in points:
            search = make_search(probe, rerank)
            search(tuning[:256])  # tracing
            begin = time.perf_counter()
            found = np.concatenate([search(tuning[start:start + 256])
                                    for start in range(0, len(tuning), 256)])
            rate = len(tuning) / (time.perf_counter() - begin)
            points[probe, rerank] = {"n_probe": probe, "rerank": rerank,
                                     "recall": recall_at_k(found, exact),
                                     "queries_per_second": rate}
        return points[probe, rerank]

    return {target: search_recall_target(measure_setting, probes, reranks, target)[:2]
            for target in targets}


def run_catalogue(kind, n_items, dim, args, rng):
    sizes = {**SIZES["tiny" if args.tiny else "full"],
             **({"tuning": args.tuning_queries} if args.tuning_queries else {})}
    n_eval = max(sizes["approximate_calls"][0], sizes["approximate_calls"][1] * BATCHES[1])
    items, queries, made = make_catalogue(kind, n_items, dim, sizes["tuning"] + n_eval, rng,
                                          sizes, args.seed)
    tuning, evaluation = queries[:sizes["tuning"]], queries[sizes["tuning"]:]
    tuning_exact, evaluation_exact = exact_top_k(items, tuning), exact_top_k(items, evaluation)
    builds, notes = [], []
    begin = time.perf_counter()
    methods = [("TFRS BruteForce", "exact", "", tfrs_top_k(items), sizes["exact_calls"])]
    builds.append(f"BruteForce {time.perf_counter() - begin:.1f} s")
    methods.append(("NumPy matmul + argpartition", "exact", "", numpy_top_k(items),
                    sizes["exact_calls"]))
    partitions = None  # the k-means runs once; the other quantisations reuse its partitions
    for quantization in args.quantizations:
        if quantization not in QUANTIZATIONS:
            notes.append(f"quantization {quantization!r} skipped: the installed PartitionedTopK "
                         f"accepts {QUANTIZATIONS}")
            continue
        begin = time.perf_counter()
        index = PartitionedTopK(k=K, quantization=quantization).index(items,
                                                                      partitions=partitions)
        seconds = time.perf_counter() - begin
        builds.append(f"PartitionedTopK {quantization} {seconds:.1f} s" + (
            f" (k-means: {index.built_n_partitions:,} partitions, largest "
            f"{index.partition_sizes.max():,} items)" if partitions is None
            else " (partitions reused)"))
        partitions = index.partitions
        built = index.built_rerank
        reranks = ([built] if quantization == "none"
                   else [built * factor for factor in args.rerank_factors])
        choices = tuned(lambda probe, rerank, index=index: partitioned_top_k(index, probe,
                                                                             rerank),
                        doublings(index.built_n_partitions), reranks, tuning, tuning_exact,
                        args.targets)
        for target, (met, point) in choices.items():
            index.set_search_params(point["n_probe"], point["rerank"])
            setting = (f"probe {point['n_probe']} ({index.scanned_share:.1%})"
                       + ("" if quantization == "none" else f" rerank {point['rerank']}"))
            methods.append((f"Partitioned {quantization}", target,
                            setting if met else unmet(point, setting),
                            partitioned_top_k(index, point["n_probe"], point["rerank"])
                            if met else None, sizes["approximate_calls"]))
    if args.with_scann:
        with tempfile.TemporaryDirectory() as directory:
            begin = time.perf_counter()
            # num_leaves given (ScaNN's default, ~sqrt(N)): tiny catalogues get a tree too.
            params = build_ann_index(items, np.array([b"%d" % i for i in range(len(items))],
                                                     dtype=object),
                                     np.full(len(items), b"", dtype=object), f"{directory}/ann",
                                     num_leaves=max(2, round(np.sqrt(len(items)))))
            builds.append(f"ScaNN {time.perf_counter() - begin:.1f} s ({params['num_leaves']} "
                          "leaves, asymmetric hashing)")
            searcher = AnnIndex.load(f"{directory}/ann").searcher
        leaves = params["num_leaves"]
        reorders = [SCANN_REORDER * factor for factor in args.rerank_factors]
        choices = tuned(lambda probe, reorder: scann_top_k(searcher, probe, reorder),
                        doublings(leaves), reorders, tuning, tuning_exact, args.targets)
        for target, (met, point) in choices.items():
            setting = f"leaves {point['n_probe']}/{leaves} reorder {point['rerank']}"
            methods.append(("ScaNN pybind (custom code)", target,
                            setting if met else unmet(point, setting),
                            scann_top_k(searcher, point["n_probe"], point["rerank"])
                            if met else None, sizes["approximate_calls"]))

    rows = []  # (name, target, setting, batch, rate, median ms, recall) or None timings
    for batch, pick in zip(BATCHES, (0, 1)):
        for name, target, setting, search, calls in methods:
            if search is None:
                rows.append((name, target, setting, batch, None, None, None))
                continue
            rate, median, found = measure(search, evaluation, batch, calls[pick])
            recall = recall_at_k(found, evaluation_exact[:len(found)])
            rows.append((name, target, setting, batch, rate, median * 1000, recall))
    print_table(kind, n_items, dim, made, builds, notes, rows, args.targets)


def print_table(kind, n_items, dim, made, builds, notes, rows, targets):
    """One table per catalogue (rows by batch, then target), then a line per target."""
    rate_of = {(name, target, batch): rate for name, target, _, batch, rate, _, _ in rows}
    print(f"\n{kind} catalogue, {n_items:,} x {dim}: {made}")
    print(f"  built in: {'; '.join(builds)}")
    for note in notes:
        print(f"  {note}")
    print(f"  {'method':<28}{'target':>7}  {'setting':<30}{'batch':>6}{'queries/s':>11}"
          f"{'p50 ms':>10}{'recall@10':>11}{'vs Brute':>10}{'vs ScaNN':>10}")
    order = {"exact": -1.0, **{target: target for target in targets}}
    for name, target, setting, batch, rate, median_ms, recall in sorted(
            rows, key=lambda row: (row[3], order[row[1]])):
        label = target if target == "exact" else target_label(target)
        if rate is None:
            print(f"  {name:<28}{label:>7}  {'not reachable':<30}{batch:>6}   ({setting})")
            continue
        brute = rate_of[("TFRS BruteForce", "exact", batch)]
        scann = rate_of.get(("ScaNN pybind (custom code)", target, batch))
        versus_scann = f"{rate / scann:>9.2f}x" if scann else f"{'-':>10}"
        print(f"  {name:<28}{label:>7}  {setting:<30}{batch:>6}{rate:>11,.0f}{median_ms:>10.2f}"
              f"{recall:>11.3f}{rate / brute:>9.1f}x{versus_scann}")
    for target in targets:
        parts = []
        for batch in BATCHES:
            ours = {name: rate for (name, wanted, at), rate in rate_of.items()
                    if wanted == target and at == batch and name.startswith("Partitioned")
                    and rate is not None}
            scann = rate_of.get(("ScaNN pybind (custom code)", target, batch))
            if not ours:
                parts.append(f"batch {batch}: PartitionedTopK not reachable")
                continue
            best = max(ours, key=ours.get)
            text = f"batch {batch}: best {best} {ours[best]:,.0f}/s"
            if scann:
                ratio = ours[best] / scann
                text += (f" = {ratio:.2f}x ScaNN ({scann:,.0f}/s), "
                         f"{'within' if ratio >= 0.5 else 'outside'} 2x")
            elif ("ScaNN pybind (custom code)", target, batch) in rate_of:
                text += ", ScaNN not reachable"
            parts.append(text)
        print(f"  recall {target_label(target)}: " + "; ".join(parts))


def unmet(point, setting):
    """What a sweep that never met its target reached at best, on the tuning queries."""
    return f"the sweep's best: recall {point['recall']:.3f} at {setting}"


def target_label(target):
    """0.9 -> "0.90", 0.999 -> "0.999"."""
    return f"{target:.2f}" if round(target, 2) == target else f"{target:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=None,
                        help="catalogues as ITEMSxDIM (default 1000000x64 100000x128; "
                             "--tiny: 2000x16)")
    parser.add_argument("--catalogue", nargs="+", default=["clustered", "random", "learned"],
                        choices=["clustered", "random", "learned"], help="run in this order")
    parser.add_argument("--quantizations", nargs="+", default=["bfloat16", "none", "int8"],
                        help="PartitionedTopK scans, each tuned to every target; one the "
                             "installed PartitionedTopK does not accept is skipped with a note")
    parser.add_argument("--targets", nargs="+", type=float, default=[0.9, 0.95],
                        help="recall@10 targets the approximate indexes are tuned to")
    parser.add_argument("--rerank-factors", nargs="+", type=int, default=[1, 4],
                        help="re-rank depths swept, as multiples of the default (a quantised "
                             "PartitionedTopK's rerank 100, ScaNN's reorder 200)")
    parser.add_argument("--tuning-queries", type=int, default=None,
                        help="held-out queries the settings are tuned on (default 500; "
                             "--tiny: 256)")
    parser.add_argument("--no-scann", action="store_true", help="skip the ScaNN rows")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny shapes, few queries, a tiny world trained one epoch (a test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if any(not 0 < target <= 1 for target in args.targets):
        parser.error(f"--targets must be in (0, 1]. Received: {args.targets}")
    if min(args.rerank_factors) < 1 or (args.tuning_queries or 1) < 1:
        parser.error("--rerank-factors and --tuning-queries must be positive.")
    args.targets = sorted(set(args.targets))
    shapes = args.shapes or (["2000x16"] if args.tiny else ["1000000x64", "100000x128"])
    print("$ " + " ".join([sys.executable.split("/")[-1]] + sys.argv))
    print(f"TensorFlow {tf.__version__}, NumPy {np.__version__}; every method on this "
          f"machine's CPU threads; ScaNN searches one batch on one thread. Settings tuned on "
          f"held-out queries, timed on others.")
    args.with_scann = not args.no_scann
    if args.with_scann:
        try:
            import_scann_pybind()
        except ImportError as error:  # still worth running without it
            print(f"ScaNN rows skipped: {error}")
            args.with_scann = False
    rng = np.random.default_rng(args.seed)
    for shape in shapes:
        try:
            n_items, dim = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            parser.error(f"--shapes must be ITEMSxDIM, e.g. 1000000x64. Received: {shape!r}")
        for kind in args.catalogue:
            run_catalogue(kind, n_items, dim, args, rng)


if __name__ == "__main__":
    main()
