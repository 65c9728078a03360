"""Benchmark: the vectorised per-user AUC against a per-user scikit-learn loop (the baseline
a practitioner would write), measured in the same run on the same data.

    .venv/bin/python benchmarks/metrics_auc.py [--users 2000] [--items 5000]

Prints both times, the speed-up ratio, and checks the two agree.
"""

import argparse
import time

import numpy as np
import scipy.sparse
from sklearn.metrics import roc_auc_score

from tfrec_fashion.metrics import per_user_auc, per_user_auc_from_embeddings


def sklearn_loop(scores, positives, exclude):
    values = []
    for user in range(scores.shape[0]):
        keep = exclude[user].toarray().ravel() == 0
        labels = positives[user].toarray().ravel()[keep]
        if 0 < labels.sum() < len(labels):
            values.append(roc_auc_score(labels, scores[user, keep]))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    users = rng.normal(size=(args.users, args.dim)).astype(np.float32)
    items = rng.normal(size=(args.items, args.dim)).astype(np.float32)
    scores = users @ items.T
    test_items = rng.integers(0, args.items, args.users)
    positives = scipy.sparse.csr_matrix(
        (np.ones(args.users), (np.arange(args.users), test_items)), shape=scores.shape)
    train = rng.random(scores.shape) < 0.01
    train[np.arange(args.users), test_items] = False
    exclude = scipy.sparse.csr_matrix(train.astype(np.float32))

    start = time.perf_counter()
    reference = sklearn_loop(scores, positives, exclude)
    baseline_seconds = time.perf_counter() - start
    start = time.perf_counter()
    dense = per_user_auc(scores, positives, exclude)
    dense_seconds = time.perf_counter() - start
    start = time.perf_counter()
    chunked = per_user_auc_from_embeddings(users, items, positives, exclude)
    chunked_seconds = time.perf_counter() - start
    assert abs(dense - reference) < 1e-9 and abs(chunked - reference) < 1e-6, (dense, chunked, reference)
    print(f"per-user AUC, {args.users} users x {args.items} items (AUC {reference:.4f})")
    print(f"  sklearn loop over users (baseline) {baseline_seconds:8.2f} s")
    print(f"  per_user_auc (dense scores)        {dense_seconds:8.2f} s  "
          f"{baseline_seconds / dense_seconds:6.1f}x faster")
    print(f"  per_user_auc_from_embeddings       {chunked_seconds:8.2f} s  "
          f"{baseline_seconds / chunked_seconds:6.1f}x faster")


if __name__ == "__main__":
    main()
