"""The peers' side of ``benchmarks/peers.py``: runs inside the peer virtual environment that
script builds (Cornac, implicit, scikit-surprise; never our own venv), so it imports nothing
from tfrec_fashion: NumPy, SciPy and the peer libraries only.

    <peers-venv>/bin/python benchmarks/peers_runner.py SPLIT.npz OUT.npz

SPLIT.npz (written by ``peers.export_split``) holds one training split, 0-based user and item
indices and the peers' settings as JSON:

- ``protocol``: "implicit" (leave-one-out interactions; BPR / ALS) or "ratings" (1..5 ratings;
  MF / SVD), ``n_users``, ``n_items``, ``seed``, ``methods`` (JSON: peer -> hyper-parameters);
- ``train_user``, ``train_item`` (and ``train_value``, ``rating_range`` for ratings);
- for ratings, the pairs to predict: ``test_user``, ``test_item``, ``validation_user``,
  ``validation_item``.

A peer's name may carry a tag after "@" (``cornac_bpr@learning_rate=0.01``: one point of a grid
of its settings); the part before it picks the library. OUT.npz holds, for each peer P,
``P__fit_seconds`` (the library's fit call alone, data
structures built before the clock starts) and ``P__samples`` (training samples the fit
processed: epochs x training rows); for the implicit protocol ``P__user_factors`` [n_users, d]
and ``P__item_factors`` [n_items, d] with which ``user @ item.T`` is the peer's score (a
Cornac item bias is the last item column against a user column of ones; implicit's BPR already
stores its bias that way), for ratings ``P__test_prediction`` and ``P__validation_prediction``;
a peer that cannot run writes ``P__skipped`` (the reason) instead. ``versions`` (JSON) names the
libraries. Our own code scores everything (``peers.py``), so every metric is computed once.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import scipy.sparse


def _timed(fit) -> float:
    started = time.perf_counter()
    fit()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- implicit feedback
def _cornac_dataset(user, item, value, seed):
    from cornac.data import Dataset
    triples = list(zip(user.astype(str).tolist(), item.astype(str).tolist(),
                       np.asarray(value, float).tolist()))
    return Dataset.from_uir(triples, seed=seed)


def _cornac_rows(train_set, n_users: int, n_items: int):
    """Our user / item index -> Cornac's (-1 where Cornac never saw it)."""
    users = np.full(n_users, -1)
    items = np.full(n_items, -1)
    for raw, index in train_set.uid_map.items():
        users[int(raw)] = index
    for raw, index in train_set.iid_map.items():
        items[int(raw)] = index
    return users, items


def cornac_bpr(split, params):
    from cornac.models import BPR
    train_set = _cornac_dataset(split["train_user"], split["train_item"],
                                np.ones(len(split["train_user"])), int(split["seed"]))
    model = BPR(**params, seed=int(split["seed"]), verbose=False)
    seconds = _timed(lambda: model.fit(train_set))
    users, items = _cornac_rows(train_set, int(split["n_users"]), int(split["n_items"]))
    k = model.u_factors.shape[1]
    user_factors = np.zeros((len(users), k + 1), np.float32)
    user_factors[:, k] = 1.0
    user_factors[users >= 0, :k] = model.u_factors[users[users >= 0]]
    # Items Cornac never saw (no training interaction): no factors, and the lowest bias it
    # learnt, as an item no training user chose.
    item_factors = np.zeros((len(items), k + 1), np.float32)
    item_factors[items >= 0, :k] = model.i_factors[items[items >= 0]]
    biases = np.asarray(model.i_biases).ravel()
    item_factors[:, k] = biases.min()
    item_factors[items >= 0, k] = biases[items[items >= 0]]
    return {"user_factors": user_factors, "item_factors": item_factors, "fit_seconds": seconds,
            "samples": params["max_iter"] * len(split["train_user"]),
            "unseen_items": int((items < 0).sum())}


def _user_items(split) -> scipy.sparse.csr_matrix:
    ones = np.ones(len(split["train_user"]), np.float32)
    return scipy.sparse.csr_matrix((ones, (split["train_user"], split["train_item"])),
                                   shape=(int(split["n_users"]), int(split["n_items"])))


def _implicit_model(model_class, split, params):
    user_items = _user_items(split)
    model = model_class(**params, random_state=int(split["seed"]))
    seconds = _timed(lambda: model.fit(user_items, show_progress=False))
    return {"user_factors": np.asarray(model.user_factors, np.float32),
            "item_factors": np.asarray(model.item_factors, np.float32), "fit_seconds": seconds,
            "samples": params["iterations"] * user_items.nnz}


def implicit_bpr(split, params):
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    return _implicit_model(BayesianPersonalizedRanking, split, params)


def implicit_als(split, params):
    from implicit.cpu.als import AlternatingLeastSquares
    return _implicit_model(AlternatingLeastSquares, split, params)


# ---------------------------------------------------------------------------- ratings
def _cornac_rating_model(model_class, split, params):
    train_set = _cornac_dataset(split["train_user"], split["train_item"], split["train_value"],
                                int(split["seed"]))
    model = model_class(**params, seed=int(split["seed"]), verbose=False)
    seconds = _timed(lambda: model.fit(train_set))
    users, items = _cornac_rows(train_set, int(split["n_users"]), int(split["n_items"]))
    fallback = float(train_set.global_mean)

    def predict(user, item):
        out = np.empty(len(user))
        for row, (u, i) in enumerate(zip(users[user], items[item])):
            # Cornac scores only users and items it trained on; the rest get its global mean.
            out[row] = float(model.score(int(u), int(i))) if u >= 0 and i >= 0 else fallback
        return out

    return {"test_prediction": predict(split["test_user"], split["test_item"]),
            "validation_prediction": predict(split["validation_user"],
                                             split["validation_item"]),
            "fit_seconds": seconds,
            "samples": params["max_iter"] * len(split["train_user"])}


def cornac_mf(split, params):
    from cornac.models import MF
    return _cornac_rating_model(MF, split, params)


def cornac_svd(split, params):
    from cornac.models import SVD
    return _cornac_rating_model(SVD, split, params)


def surprise_svd(split, params):
    from surprise import SVD, Dataset, Reader
    low, high = (float(v) for v in split["rating_range"])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.tsv"
        path.write_text("".join(f"{u}\t{i}\t{v}\n" for u, i, v in zip(
            split["train_user"], split["train_item"], split["train_value"])))
        data = Dataset.load_from_file(str(path), Reader(line_format="user item rating",
                                                        sep="\t", rating_scale=(low, high)))
        trainset = data.build_full_trainset()
    model = SVD(**params, random_state=int(split["seed"]))
    seconds = _timed(lambda: model.fit(trainset))

    def predict(user, item):  # surprise gives unknown users / items its global mean
        return np.array([model.predict(str(u), str(i), clip=False).est
                         for u, i in zip(user, item)])

    return {"test_prediction": predict(split["test_user"], split["test_item"]),
            "validation_prediction": predict(split["validation_user"],
                                             split["validation_item"]),
            "fit_seconds": seconds, "samples": params["n_epochs"] * len(split["train_user"])}


def rlrmc(split, params):
    """Microsoft Recommenders' RLRMC, when that package is installed here."""
    from recommenders.models.rlrmc.RLRMCalgorithm import RLRMCalgorithm  # noqa: F401
    raise NotImplementedError("RLRMC's runner is not written: recommenders installed, but "
                              "benchmarks/peers_runner.py does not drive it yet")


PEERS = {"cornac_bpr": cornac_bpr, "implicit_bpr": implicit_bpr, "implicit_als": implicit_als,
         "cornac_mf": cornac_mf, "cornac_svd": cornac_svd, "surprise_svd": surprise_svd,
         "rlrmc": rlrmc}


def versions() -> dict[str, str]:
    from importlib import metadata
    found = {}
    for name in ("numpy", "scipy", "cornac", "implicit", "scikit-surprise", "recommenders"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def run(split_path: str | Path, out_path: str | Path) -> dict[str, np.ndarray]:
    with np.load(split_path, allow_pickle=False) as stored:
        split = {key: stored[key] for key in stored.files}
    out: dict[str, np.ndarray] = {"versions": np.array(json.dumps(versions()))}
    for name, params in json.loads(str(split["methods"])).items():
        family = name.split("@")[0]  # "cornac_bpr@lr=0.01": one point of a peer's grid
        if family not in PEERS:
            raise SystemExit(f"peers_runner: unknown peer {name!r}; known: {sorted(PEERS)}")
        print(f"peers_runner: fitting {name} {params}", flush=True)
        try:
            result = PEERS[family](split, params)
        except ImportError as error:
            out[f"{name}__skipped"] = np.array(f"not installed in the peer venv: {error}")
            continue
        except Exception as error:  # noqa: BLE001  (a peer's failure skips that peer, said why)
            traceback.print_exc()
            out[f"{name}__skipped"] = np.array(f"{type(error).__name__}: {error}")
            continue
        print(f"peers_runner: {name} fitted in {result['fit_seconds']:.2f} s", flush=True)
        out.update({f"{name}__{key}": np.asarray(value) for key, value in result.items()})
    np.savez(out_path, **out)
    return out


if __name__ == "__main__":
    if len(sys.argv) == 1:
        # `make benchmark` runs every script here without arguments: this one is run by
        # peers.py inside the peer venv, so alone it only says so.
        print("peers_runner.py is run by benchmarks/peers.py inside the peer venv:\n"
              + __doc__.split("\n\n")[1])
        sys.exit(0)
    if len(sys.argv) != 3:
        raise SystemExit("usage:" + __doc__.split("\n\n")[1])
    run(sys.argv[1], sys.argv[2])
