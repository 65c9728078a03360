"""The end-to-end demo: every stage that exists, on the embedded synthetic worlds.

``tfrec-fashion demo`` (or ``make demo``) reads ``configs/demo.yaml``: for each named run it
trains, evaluates (with the oracle and baselines beside the model), plots training curves and,
for worlds with images, a grid of their items; then it prints one table and writes
``<workdir>/summary.md``. Then the production path: every run is exported to
``<workdir>/exports`` (versioned SavedModels + models.config), served by our TF Serving-compatible
gRPC server, and queried with the official TF Serving stubs, for a known customer and an unknown
one (cold start); the served top-10 is checked against the top-10 the trained model itself
gives by the function the export serves (``_served_function_scores``; order may differ only
within float32 ties, ``top_k_matches``) and drawn as ``<workdir>/recommendations.png``. A new
customer of the planted world (a persona's survey answers and 10 votes) is served through
``recommend_new_customer`` (StyNet's, which reads the survey) and drawn beside the mean
customer's top-10 as ``<workdir>/newcomer.png``, with how many of each fall in the newcomer's
planted taste (``_show_newcomer``; its line goes under the summary table). Pair
models answer through the compatibility head (best partners of a top) and outfit models (PAN,
FHN) through the outfit head (a held-out outfit's score, the best items for its blank slot),
each checked against the Keras model's own scores. Complete-the-look runs answer through the
look head (``similar`` and ``complementary`` of a query product per outfit slot, and one product
given as pixels), each top-10 checked against the model's own cosine top-10, drawn as
``<workdir>/complete_the_look.png`` (per query product: its similar and its complementary
items). Runs with an image path (DVBPR, PAN and complete the look on images) get attention maps
first (``<run>/attention/``: GradCAM of three customers' scores, or for complete the look of
three anchor items' compatibility, with the sanity line), so their exports carry them to the
browse page. Last, ``<workdir>/report.html`` gathers
it all in one file. Stages still to come are listed as pending.

Like ``cli``, this module is a composition root: it may wire every stage, export and serving
included.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tfrec_fashion.config import load_config
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.run_config import RunConfig

DEFAULT_CONFIG = Path("configs/demo.yaml")
PENDING_STAGES: tuple[str, ...] = ()  # every stage of the brief is built
DESIGNS_SHOWN = 8  # designs drawn per design run (the design signature's default n)
ATTENTION_METHOD = "gradcam"  # the one that follows the customer (README "Attention maps")
SERVED_K = 10
LOOK_SHOWN = 5  # similar and complementary items drawn per query product
HAMMING_RERANK = 30  # of the demo world's 525 bottoms: the Hamming index prunes
HAMMING_QUERIES = 20  # outfits asked of both exports (an exact CNN PAN encodes N x S images each)


@dataclasses.dataclass
class DemoConfig:
    """The demo: named runs, each a full ``RunConfig`` (its run_dir is placed in the workdir)."""

    runs: dict[str, RunConfig] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("the demo config names no runs")


def run_demo(workdir: Path, config_path: str | Path | None = None,
             overrides: list[str] | tuple[str, ...] = ()) -> dict[str, dict]:
    """Runs the demo into ``workdir`` and returns run name -> metrics."""
    from tfrec_fashion.evaluation.protocols import protocol_of
    from tfrec_fashion.training.harness import train
    from tfrec_fashion.training.recipes import SolverRecipe
    from tfrec_fashion.visualisation.solver_convergence import plot_solver_convergence
    from tfrec_fashion.visualisation.training_curves import plot_training_curves

    path = Path(config_path) if config_path else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"demo config {path} does not exist; run the demo from the repository "
                          "root or pass --config")
    config = load_config(DemoConfig, path, overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    trained = {}
    for name, run in config.runs.items():
        print(f"\n=== {name}: training {run.model.name} on {run.data.name}")
        started = time.time()
        result = train(_in_workdir(run, workdir, config.runs), run_dir=workdir / name,
                       overwrite=True)
        metrics = {**result.metrics, "train_seconds": round(time.time() - started, 1)}
        title = f"{name}: {run.model.name} on {run.data.name}"
        if isinstance(result.recipe, SolverRecipe):  # a solver's iterations, not Keras epochs
            plot = plot_solver_convergence(result.history, workdir / name / "convergence.png",
                                           title, run.model.gap_tolerance)
        else:
            # Lines beside the validation curve: the rows its protocol reports beside the model.
            reference = protocol_of(metrics).curve_references(metrics)
            plot = plot_training_curves(result.history, workdir / name / "training_curves.png",
                                        title=title, reference=reference)
        print(f"    curves: {plot}")
        _show_items(result.dataset, workdir / f"{name}_items.png")
        _show_trends(result, workdir / f"{name}_trends.png")
        results[name] = metrics
        trained[name] = result
    for name, result in trained.items():
        sanity = _attention(result)
        if sanity is not None:
            results[name]["attention_sanity"] = sanity
    for name, checks in export_and_serve(trained, workdir).items():
        results[name].update(checks)
    summary = _summary_table(results)
    # The served newcomer's line under the table (its numbers are in summary.json too).
    summary += "".join(f"\n\n{metrics['newcomer']}" for metrics in results.values()
                       if "newcomer" in metrics)
    print("\n" + summary)
    (workdir / "summary.md").write_text(summary + "\n")
    if PENDING_STAGES:
        print("Pending stages (not built yet): " + ", ".join(PENDING_STAGES))
    (workdir / "summary.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {workdir / 'summary.md'} and per-run folders under {workdir}")
    from tfrec_fashion.visualisation.report import write_report

    print(f"report (tables, curves, grids, attention maps in one file): {write_report(workdir)}")
    return results


# Model fields that may name an earlier demo run: PSA-Net reads a run's customer embeddings,
# the design GAN a DVBPR run's theta_u and Phi.
RUN_FIELDS = ("customer_embeddings", "dvbpr_run")


def _in_workdir(run: RunConfig, workdir: Path, runs: dict[str, RunConfig]) -> RunConfig:
    """``run`` with each ``RUN_FIELDS`` field that names another demo run (a relative path whose
    first part is that run's name, e.g. ``partial_dual_synthetic``) pointed at its folder in the
    workdir, where that run was trained."""
    named = {field: str(workdir / path) for field in RUN_FIELDS
             if (path := getattr(run.model, field, None)) is not None
             and not Path(path).is_absolute() and Path(path).parts[0] in runs}
    if not named:
        return run
    return dataclasses.replace(run, model=dataclasses.replace(run.model, **named))


def _attention(result) -> str | None:
    """For a run with an image path: ``ATTENTION_METHOD`` maps of three customers' scores on the
    first one's top items, into ``<run>/attention/``, with the sanity checks; returns the sanity
    line (None for runs without an image path). The first customer is the one who scores their
    top item highest: a GradCAM of a score that no part of the image raises (every item scored
    below zero) is flat, which shows nothing; then the customer most alike and the one most
    opposite to them (cosine of their vectors)."""
    import numpy as np

    from tfrec_fashion.config import read_yaml
    from tfrec_fashion.visualisation.attention import AttentionError, check_request, image_path
    from tfrec_fashion.visualisation.attention_files import write_attention_maps

    if result.recipe.protocol == "design":  # maps over the customer's designs
        return _design_attention(result)
    try:
        path = image_path(read_yaml(result.run_dir / "config.yaml").get("model", {}))
    except AttentionError:
        return None
    if path == "pan":  # Fig. 3: customers whose planted tastes differ
        from tfrec_fashion.visualisation.pan_attention import users_whose_tastes_differ

        users, why = users_whose_tastes_differ(result.dataset), "planted tastes that differ"
    elif path == "complete_the_look":  # no customers: anchor items take their place
        anchors = [str(result.dataset.items.ids[i]) for i in _look_queries(result)]
        request = check_request(result.run_dir, anchors, method=ATTENTION_METHOD)
        written = write_attention_maps(request, result.run_dir / "attention", sanity=True)
        print(f"    attention: {written.png} (compatibility with {', '.join(anchors)}: an anchor "
              f"per outfit slot, over the first one's best complements)\n"
              f"    {written.sanity_line}")
        return written.sanity_line
    else:
        with np.load(result.run_dir / "serving" / "arrays.npz") as arrays:  # the export's
            users = _surest_alike_opposite(arrays["user_vectors"], arrays["item_vectors"])
        why = "the customer surest of a top item, the most alike, the most opposite"
    ids = [str(result.dataset.users.ids[u]) for u in users]
    request = check_request(result.run_dir, ids, method=ATTENTION_METHOD)
    written = write_attention_maps(request, result.run_dir / "attention", sanity=True)
    print(f"    attention: {written.png} ({', '.join(ids)}: {why})\n    {written.sanity_line}")
    if written.spatial_png is not None:
        print(f"    PAN's own spatial attention (Fig. 3): {written.spatial_png}")
    return written.sanity_line


def _surest_customer(theta, items) -> int:
    """The customer (row of theta [U, D]) who scores their top item of items [N, D] highest."""
    import numpy as np

    return int(np.argmax((theta @ items.T).max(axis=1)))


def _surest_alike_opposite(theta, items) -> list[int]:
    """The customers whose maps the demo draws: the one who scores their top item highest
    (theta [U, D] . items [N, D]), then the customer most alike and the one most opposite to
    them (cosine of their vectors)."""
    import numpy as np

    first = _surest_customer(theta, items)
    cosine = theta @ theta[first] / np.maximum(
        np.linalg.norm(theta, axis=1) * np.linalg.norm(theta[first]), 1e-12)
    cosine[first] = np.nan
    return [first, int(np.nanargmax(cosine)), int(np.nanargmin(cosine))]


def _design_attention(result) -> str:
    """A design run's maps: ``ATTENTION_METHOD`` maps of the designed-for customer's (the
    demo's design customer, ``_design_customer``) and two other customers' DVBPR preference
    over the first one's designs, with the sanity checks; returns the sanity line."""
    from tfrec_fashion.visualisation.design_attention import write_design_maps

    users = _surest_alike_opposite(result.recipe.user_vectors, result.recipe.item_vectors)
    ids = [str(result.dataset.users.ids[u]) for u in users]
    written, category = write_design_maps(result.run_dir, ids, result.run_dir / "attention",
                                          ATTENTION_METHOD, sanity=True)
    print(f"    attention: {written.png} ({', '.join(ids)}' preference over {ids[0]}'s designs "
          f"in {category!r}: the customer designed for, the most alike, the most opposite)\n"
          f"    {written.sanity_line}")
    return written.sanity_line


def _design_customer(result) -> int:
    """The customer the demo designs for: the one surest of a catalogue item (their best
    item's preference the highest), whose taste the designs can show most clearly."""
    return _surest_customer(result.recipe.user_vectors, result.recipe.item_vectors)


def _query_design_model(result, target: str, name: str, path: Path) -> dict[str, Any]:
    """Designs for the demo's design customer in the category of their best catalogue item,
    through the served ``design`` signature (the official stub), checked against the trained
    models and drawn beside the customer's history and the retrieval picks (delta(u, c), eq.
    8): ``path``. Returns the checks: the served scores are DVBPR's theta_u . Phi of the served
    images (``served_matches_keras``), the designs score above the category's catalogue items
    on average, an unknown customer is flagged as the cold start."""
    import numpy as np

    from tfrec_fashion_serving import client
    from tfrec_fashion.visualisation.design_attention import best_item_category
    from tfrec_fashion.visualisation.item_grid import plot_item_grid

    recipe, dataset = result.recipe, result.dataset
    user = _design_customer(result)
    user_id = str(dataset.users.ids[user])
    preference = recipe.user_vectors[user] @ recipe.item_vectors.T  # every catalogue item's
    category = best_item_category(recipe, user)
    answer = client.design(target, name, [user_id, "new-customer"], category, n=DESIGNS_SHOWN)
    images, served = np.asarray(answer["images"][0]), np.asarray(answer["scores"][0])
    keras = recipe.designer(result.model).preference(images, np.full(len(images), user))
    matches = bool(np.allclose(served, keras, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(keras).max())))
    in_category = np.flatnonzero(np.asarray(dataset.items.category) == category)
    beats = bool(served.mean() > preference[in_category].mean())
    cold = bool(answer["cold_start"][1]) and not bool(answer["cold_start"][0])
    print(f"=== query {name} (official PredictionServiceStub): design for {user_id} in "
          f"{category!r} -> {len(images)} images, preference {served.mean():.2f} (the "
          f"category's catalogue items: mean {preference[in_category].mean():.2f}, best "
          f"{preference[in_category].max():.2f}); unknown customer: cold start {cold}")
    print(f"    served scores == DVBPR's theta_u . Phi of the served images: {matches}; designs "
          f"beat the category's average item: {beats}")

    def shown(rows) -> np.ndarray:  # catalogue items at the designs' size, in [0, 1]
        return np.asarray(recipe.images[np.asarray(rows, int)], np.float32)

    mine = dataset.interactions.user == user
    bought = dataset.interactions.item[mine][np.argsort(dataset.interactions.timestamp[mine])]
    bought = bought[-DESIGNS_SHOWN:]
    retrieved = in_category[np.argsort(-preference[in_category], kind="stable")[:DESIGNS_SHOWN]]
    blank = np.ones((DESIGNS_SHOWN - len(bought), *images.shape[1:]), np.float32)
    grid = np.concatenate([shown(bought), blank, shown(retrieved), images])
    captions = ([f"bought: {dataset.items.category[i]}" for i in bought] + [""] * len(blank)
                + [f"retrieved #{rank} {preference[i]:.2f}" for rank, i in enumerate(retrieved, 1)]
                + [f"design #{rank} {score:.2f}" for rank, score in enumerate(served, 1)])
    plot_item_grid(grid, captions, path, columns=DESIGNS_SHOWN,
                   title=f"{name}: designs for customer {user_id}\nrows: last purchases | the "
                         f"best {category} in the catalogue by DVBPR, delta(u, c) | served "
                         f"designs, delta-hat(u, c); scores theta_u . Phi")
    print(f"    designs: {path}")
    return {"served_matches_keras": matches, "served_designs_beat_category_mean": beats,
            "served_design_cold_start_flagged": cold}


def export_and_serve(trained: dict, workdir: Path) -> dict[str, dict]:
    """Exports every run, serves the export base over gRPC and queries each model with the
    official TF Serving stubs; returns run name -> {"served_matches_keras": bool}: whether
    customer 0's served top-10 is the trained model's own (``top_k_matches``)."""
    import shutil

    import numpy as np

    from tfrec_fashion.evaluation.protocols import protocol_of
    from tfrec_fashion_export.runs import run_parts
    from tfrec_fashion_export.writer import export_parts
    from tfrec_fashion_serving import client
    from tfrec_fashion_serving.server import start_server

    base = workdir / "exports"
    shutil.rmtree(base, ignore_errors=True)
    print(f"\n=== export: {len(trained)} models to {base}")
    parts = {}
    for name, result in trained.items():
        parts[name] = run_parts(result.run_dir)  # what the run wrote for serving
        path = export_parts(parts[name], base, name)
        print(f"    {name}: {path}")
    # One model again with the approximate index inside the SavedModel (stock ops only), made
    # approximate on this small catalogue by probing a quarter of its partitions.
    approximate = next((name for name in trained if parts[name].HEAD == "retrieval"), None)
    if approximate is not None:
        path = export_parts(parts[approximate], base, f"{approximate}_partitioned",
                            index="partitioned", index_params={"n_partitions": 24, "n_probe": 6})
        print(f"    {approximate}_partitioned: {path}")
    # Outfit models with binary codes again with the Hamming index: the blank slot's items
    # nearest the outfit's query code, HAMMING_RERANK of them re-scored exactly.
    hashed = [name for name in trained if parts[name].HEAD == "outfit"
              and parts[name].scorer.codes is not None]
    for name in hashed:
        path = export_parts(parts[name], base, f"{name}_hamming", index="hamming",
                            index_params={"rerank": HAMMING_RERANK})
        print(f"    {name}_hamming: {path}")
    checks: dict[str, dict] = {}
    with start_server(str(base / "models.config"), port=0, rest_port=0) as server:
        target = f"127.0.0.1:{server.port}"
        print(f"=== serve: gRPC on {target}, REST on 127.0.0.1:{server.rest_port}")
        for name, result in trained.items():
            server.wait_until_available(name, timeout=120)
            if parts[name].HEAD == "compatibility":
                checks[name] = _query_pair_model(result, target, name)
                continue
            if parts[name].HEAD == "outfit":
                checks[name] = _query_outfit_model(result, target, name)
                continue
            if parts[name].HEAD == "generation":  # the first design run's designs are drawn
                drawn = not any(parts[n].HEAD == "generation" for n in checks)
                checks[name] = _query_design_model(
                    result, target, name, workdir / ("designs.png" if drawn
                                                     else f"{name}_designs.png"))
                continue
            if parts[name].HEAD == "look":  # the first look run's answers are drawn
                drawn = not any(parts[n].HEAD == "look" for n in checks)
                checks[name] = _query_look_model(result, target, name,
                                                 workdir / "complete_the_look.png" if drawn
                                                 else None)
                continue
            users = [str(result.dataset.users.ids[0]), "new-customer"]
            answer = client.recommend(target, name, users, k=SERVED_K)
            ids = np.asarray(answer["item_ids"]).astype(str)
            # The trained model's own top-10 by the function the export serves, less what
            # the customer bought (recommend's default).
            scores, function = _served_function_scores(result)
            scores[result.dataset.interactions.item[result.dataset.interactions.user == 0]] = \
                -np.inf
            rows = {str(item_id): row for row, item_id in enumerate(result.dataset.items.ids)}
            matches = top_k_matches([rows.get(item_id, -1) for item_id in ids[0]], scores,
                                    SERVED_K)
            checks[name] = {"served_matches_keras": matches}
            print(f"=== query {name} (official PredictionServiceStub): {users[0]} -> "
                  f"{' '.join(ids[0][:5])} ...; unknown customer (cold start: "
                  f"{bool(answer['cold_start'][1])}) -> {' '.join(ids[1][:5])} ...")
            print(f"    served top-{SERVED_K} == the trained model's top-{SERVED_K} by "
                  f"{function} (order free only within float32 ties): {matches}")
        if approximate is not None:
            checks[approximate]["served_partitioned_recall_at_10"] = _query_partitioned(
                trained[approximate], target, approximate, server)
        for name in hashed:
            checks[name]["served_hamming_recall_at_10"] = _query_hamming(
                trained[name], target, name, server)
        # Drawn for the best implicit-feedback run whose items have images.
        drawable = [n for n, r in trained.items() if r.dataset.items.images is not None
                    and protocol_of(r.metrics).name == "implicit"]
        if drawable:
            name = max(drawable, key=lambda n: trained[n].metrics.get("test_auc", 0.0))
            _show_recommendations(trained[name], target, name,
                                  workdir / "recommendations.png")
        newcomer = _newcomer_run(trained, parts)
        if newcomer is not None:
            checks[newcomer].update(_show_newcomer(trained[newcomer], parts[newcomer].new_customer,
                                                   target, newcomer, workdir / "newcomer.png"))
    return checks


def _query_pair_model(result, target: str, name: str) -> dict[str, bool]:
    """Asks a pair model (the compatibility head's ``complete_pair``, its serving_default) for
    the best partners of the first top, for a customer and for an unknown one, and checks the
    answer against the trained model's own scores of every partner it could pick."""
    import numpy as np

    from tfrec_fashion_serving import client, contract

    items = result.dataset.items
    top = int(np.flatnonzero(items.category == "top")[0])
    users = [str(result.dataset.users.ids[0]), "new-customer"]
    answer = client.predict(target, name, {"user_id": contract.string_array(users),
                                           "item_id": contract.string_array([items.ids[top]] * 2),
                                           "k": np.full(2, SERVED_K, np.int32)})
    ids = np.asarray(answer["item_ids"]).astype(str)
    every = np.arange(len(items.ids))  # customer 0's score of the top with every item
    scores = result.recipe.pair_scores(result.model, np.zeros_like(every), np.full_like(every, top),
                                       every)
    partners = result.recipe.evaluation.complements()[str(items.category[top])]
    scores[~np.isin(items.category, partners)] = -np.inf
    scores[top] = -np.inf
    rows = {str(item_id): row for row, item_id in enumerate(items.ids)}
    matches = top_k_matches([rows.get(item_id, -1) for item_id in ids[0]], scores, SERVED_K)
    print(f"=== query {name} (complete_pair, official PredictionServiceStub): best bottoms for "
          f"{items.ids[top]}: {' '.join(ids[0][:5])} ...; unknown customer (cold start: "
          f"{bool(answer['cold_start'][1])}) -> {' '.join(ids[1][:5])} ...")
    print(f"    served top-{SERVED_K} == the trained model's top-{SERVED_K} by its pair score "
          f"(order free only within float32 ties): {matches}")
    return {"served_matches_keras": matches}


def _query_outfit_model(result, target: str, name: str) -> dict[str, bool]:
    """Asks an outfit model (the outfit head) for customer 0's score of their first held-out
    outfit (``score_outfit``) and for the best bottoms to fill that outfit's blanked bottom
    (``fill_in_the_blank``, its serving_default), for them and for an unknown customer, and
    checks both against the trained Keras model's own scores: the served outfit score within
    float32 rounding, the served top-10 bottoms its top-10 of every bottom."""
    import numpy as np

    from tfrec_fashion_serving import client, contract

    dataset, test = result.dataset, result.recipe.evaluation.split.test
    outfit = test.items[np.flatnonzero(test.user == 0)[0]]  # top, bottom, shoes rows
    ids = dataset.items.ids
    users = [str(dataset.users.ids[0]), "new-customer"]
    score = result.recipe.outfit_score(result.model)  # the protocol's score: the Keras model
    served = client.predict(target, name, {"user_id": contract.string_array(users),
                                           "item_ids": contract.string_array([ids[outfit]] * 2)},
                            signature="score_outfit")
    expected = score(np.array([0, -1]), np.stack([outfit, outfit]))  # -1: the cold-start vector
    scores_match = bool(np.allclose(served["scores"], expected, rtol=1e-5, atol=1e-6))
    blank = list(result.recipe.slots).index("bottom")
    blanked = ids[outfit].astype(object)
    blanked[blank] = ""
    answer = client.predict(target, name, {
        "user_id": contract.string_array(users), "item_ids": contract.string_array([blanked] * 2),
        "blank_slot": contract.string_array(["bottom"] * 2),
        "k": np.full(2, SERVED_K, np.int32),
        "exclude_item_ids": contract.string_array([[""]] * 2)}, signature="fill_in_the_blank")
    filled = np.asarray(answer["item_ids"]).astype(str)
    every = np.repeat(outfit[None], dataset.n_items, axis=0)  # customer 0's outfit, each item
    every[:, blank] = np.arange(dataset.n_items)  # in the bottom's place
    keras = score(np.zeros(dataset.n_items, np.int64), every)
    keras[dataset.items.category != "bottom"] = -np.inf
    rows = {str(item_id): row for row, item_id in enumerate(ids)}
    top_matches = top_k_matches([rows.get(i, -1) for i in filled[0]], keras, SERVED_K)
    print(f"=== query {name} (score_outfit, fill_in_the_blank; official PredictionServiceStub): "
          f"{users[0]}'s held-out outfit {' '.join(ids[outfit])} scores "
          f"{float(served['scores'][0]):.4f} (Keras {float(expected[0]):.4f}), "
          f"{float(served['scores'][1]):.4f} for an unknown customer (cold start: "
          f"{bool(served['cold_start'][1])}); its best bottoms {' '.join(filled[0][:5])} ...")
    print(f"    served top-{SERVED_K} == the trained model's top-{SERVED_K} by its outfit score, "
          f"and the served outfit scores are the Keras model's: {scores_match and top_matches}")
    return {"served_matches_keras": scores_match and top_matches}


def _look_queries(result) -> list[int]:
    """The demo's query products of a complete-the-look run: the first item of each outfit
    slot's category (the planted world's first top, bottom and shoes), item indices."""
    import numpy as np

    categories = np.asarray(result.dataset.items.category).astype(str)
    return [int(np.flatnonzero(categories == slot)[0])
            for slot in result.recipe.evaluation.split.train.slots]


def _query_look_model(result, target: str, name: str, grid: Path | None) -> dict[str, bool]:
    """Asks a complete-the-look model (the look head) for the items similar to and the items
    that complete each query product (``_look_queries``; ``similar`` and ``complementary``, its
    serving_default), and, with an image path, for the first query given as pixels (a product
    not in the catalogue, anchored by its image and category); checks every served top-10
    against the trained model's own cosine top-10: similar by the recipe's EfficientNet-Lite0
    vectors within the query's category, complementary by the model's style vectors within the
    other outfit slots' categories, the image by its style vector through the model's image path
    (the query item itself never served). Draws the answers to ``grid`` (None: not drawn)."""
    import numpy as np

    from tfrec_fashion_serving import client

    dataset, recipe, model = result.dataset, result.recipe, result.model
    items, queries = dataset.items, _look_queries(result)
    categories = np.asarray(items.category).astype(str)
    slots = list(recipe.evaluation.split.train.slots)
    ids = [str(items.ids[q]) for q in queries]
    similar = client.similar(target, name, ids, k=SERVED_K)
    complementary = client.complementary(target, name, ids, k=SERVED_K)

    def unit(vectors) -> np.ndarray:
        vectors = np.asarray(vectors, np.float64)
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)

    def cosines(vectors: np.ndarray, anchor: np.ndarray, allowed: Sequence[str],
                query: int | None) -> np.ndarray:
        scores = vectors @ anchor
        scores[~np.isin(categories, allowed)] = -np.inf
        if query is not None:
            scores[query] = -np.inf  # the query item itself is never served
        return scores

    rows = {str(item_id): row for row, item_id in enumerate(items.ids)}

    def served_rows(answer: dict, row: int) -> list[int]:
        return [rows.get(_text(i), -1) for i in answer["item_ids"][row]]

    alike, style = unit(recipe.similar_vectors), unit(model.item_style_embeddings())
    matches = []
    for row, query in enumerate(queries):
        category = categories[query]
        others = [slot for slot in slots if slot != category]
        matches.append(top_k_matches(served_rows(similar, row),
                                     cosines(alike, alike[query], [category], query), SERVED_K))
        matches.append(top_k_matches(served_rows(complementary, row),
                                     cosines(style, style[query], others, query), SERVED_K))
    image_line = ""
    if recipe.model_config.backbone != "attributes":  # an image path: a product as pixels
        query, category = queries[0], categories[queries[0]]
        pixels = np.asarray(items.images[query:query + 1], np.float32) / 255.0
        answer = client.complementary(target, name, item_ids=[""], images=pixels, k=SERVED_K,
                                      item_category=category)
        anchor = unit(recipe.image_embedders(model)[1].embed(pixels).numpy())[0]
        matches.append(top_k_matches(served_rows(answer, 0), cosines(
            style, anchor, [s for s in slots if s != category], None), SERVED_K))
        image_line = (f"; {ids[0]}'s image as a new product -> complements "
                      f"{' '.join(_text(i) for i in answer['item_ids'][0][:3])} ...")
    print(f"=== query {name} (similar, complementary; official PredictionServiceStub): "
          f"{ids[0]} ({categories[queries[0]]}) -> similar "
          f"{' '.join(_text(i) for i in similar['item_ids'][0][:3])} ..., complements "
          f"{' '.join(_text(i) for i in complementary['item_ids'][0][:3])} ...{image_line}")
    print(f"    served top-{SERVED_K} == the trained model's top-{SERVED_K} by cosine (similar: "
          f"EfficientNet-Lite0 vectors; complementary: style vectors) for {len(queries)} query "
          f"products{' and one image' if image_line else ''} (order free only within float32 "
          f"ties): {all(matches)}")
    if grid is not None and items.images is not None:
        _show_look(result, queries, similar, complementary, grid, name)
    return {"served_matches_keras": all(matches)}


def _show_look(result, queries: list[int], similar: dict, complementary: dict, path: Path,
               name: str) -> None:
    """Draws the served answers: a row per query product, its ``LOOK_SHOWN`` similar and
    complementary items with their cosines."""
    import numpy as np

    from tfrec_fashion.visualisation.look_grid import plot_look_grid

    items = result.dataset.items
    rows = {str(item_id): row for row, item_id in enumerate(items.ids)}

    def shown(answer: dict) -> tuple[np.ndarray, list[list[str]]]:
        picked = [[rows[_text(i)] for i in answer["item_ids"][row][:LOOK_SHOWN]]
                  for row in range(len(queries))]
        captions = [[f"{items.category[i]} {score:.2f}" for i, score in
                     zip(row, answer["scores"][r][:LOOK_SHOWN])] for r, row in enumerate(picked)]
        return np.asarray(items.images)[np.array(picked)], captions

    alike, alike_captions = shown(similar)
    completing, completing_captions = shown(complementary)
    plot_look_grid(np.asarray(items.images)[queries],
                   [f"{items.ids[q]} ({items.category[q]})" for q in queries], alike,
                   alike_captions, completing, completing_captions, path,
                   title=f"{name}: complete the look (served; cosine of EfficientNet-Lite0 "
                         "vectors / of style vectors)")
    print(f"    complete the look: {path}")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _query_partitioned(result, target: str, name: str, server) -> float:
    """recall@10 of ``<name>_partitioned``'s recommend against the exact export's, for the
    first 50 customers."""
    from tfrec_fashion_export.ann_index import recall_at_k
    from tfrec_fashion_serving import client

    server.wait_until_available(f"{name}_partitioned", timeout=120)
    users = [str(u) for u in result.dataset.users.ids[:50]]
    exact = client.recommend(target, name, users, k=SERVED_K)["item_ids"]
    found = client.recommend(target, f"{name}_partitioned", users, k=SERVED_K)["item_ids"]
    recall = recall_at_k(found, exact)
    print(f"=== query {name}_partitioned (the approximate index, 6 partitions probed): "
          f"recall@{SERVED_K} against the exact export over {len(users)} customers "
          f"{recall:.3f}")
    return recall


def _query_hamming(result, target: str, name: str, server) -> float:
    """recall@10 of ``<name>_hamming``'s fill_in_the_blank against the exact export's, for the
    first HAMMING_QUERIES customers' first held-out outfits with the bottom blanked, and the
    seconds each export took to answer them."""
    import time

    import numpy as np

    from tfrec_fashion_export.ann_index import recall_at_k
    from tfrec_fashion_serving import client, contract

    server.wait_until_available(f"{name}_hamming", timeout=120)
    test, ids = result.recipe.evaluation.split.test, result.dataset.items.ids
    users = np.unique(test.user)[:HAMMING_QUERIES]
    outfits = ids[test.items[[np.flatnonzero(test.user == u)[0] for u in users]]].astype(object)
    outfits[:, list(result.recipe.slots).index("bottom")] = ""
    request = {"user_id": contract.string_array(result.dataset.users.ids[users]),
               "item_ids": contract.string_array(outfits),
               "blank_slot": contract.string_array(["bottom"] * len(users)),
               "k": np.full(len(users), SERVED_K, np.int32),
               "exclude_item_ids": contract.string_array([[""]] * len(users))}
    answers, seconds = [], []
    for model in (f"{name}_hamming", name):
        started = time.perf_counter()
        answers.append(client.predict(target, model, request, signature="fill_in_the_blank",
                                      timeout=600)["item_ids"])
        seconds.append(time.perf_counter() - started)
    recall = recall_at_k(*answers)
    bottoms = int((result.dataset.items.category == "bottom").sum())
    print(f"=== query {name}_hamming (fill_in_the_blank by Hamming ranking, {HAMMING_RERANK} of "
          f"{bottoms} bottoms re-scored): recall@{SERVED_K} against the exact export over "
          f"{len(users)} customers' outfits {recall:.3f}, in {seconds[0]:.2f} s against "
          f"{seconds[1]:.2f} s ({seconds[1] / seconds[0]:.1f}x)")
    return recall


def _served_function_scores(result) -> tuple[np.ndarray, str]:
    """Customer 0's score of every item by the function the export serves, computed from the
    trained model itself (not from the export's parts), and that function in words.

    The export serves, for a known customer, their one query vector dot every item's vector
    (``training/serving_parts.py``: the recipe's ``user_vectors`` and ``item_vectors``). Per
    model class:
    ``model.score`` for the Keras ranking models (the user's row . every item's row, the last
    time epoch for temporal ones); the fitted predictor for Partial Dual (offset + b_c + b_i +
    A_c . B_i: the served dot product plus a constant); for StyNet the retrieval head
    E_c . M_i with E_c from the customer's whole training vote history (no target item left
    out, unlike the pairs of ``retrieval_score`` in training), not the rating head.

    Returns:
        (float [n_items] scores, the function's description).
    """
    import numpy as np

    from tfrec_fashion.models.stynet import StyNet
    from tfrec_fashion.training.recipes.partial_dual import FittedPartialDual

    model, recipe, n_items = result.model, result.recipe, result.dataset.n_items
    if isinstance(model, StyNet):
        # No "item" input: the customer tower reads the whole history, as user_vectors does.
        customer = model.customer_embeddings(recipe.customer_inputs(np.array([0]))).numpy()
        items = model.item_embeddings(recipe.item_inputs(np.arange(n_items))).numpy()
        return (items @ customer[0],
                "the retrieval head E_c . M_i, E_c over the whole vote history")
    if isinstance(model, FittedPartialDual):
        return (np.asarray(model.predict(np.zeros(n_items, np.int64), np.arange(n_items)),
                           float),
                "the fitted predictor offset + b_c + b_i + A_c . B_i")
    # The Keras ranking models (two-tower, the VBPR family, DVBPR) score users by ``score``.
    return (np.array(model.score(np.array([0])).numpy()[0]),
            f"{type(model).__name__}.score, user vector . item vectors")


#: Scores within this fraction of the largest |score| of the top k tie: float32 rounding (another
#: batch size or summation order; 1.4e-7 relative between the demo's StyNet export and model)
#: must not fail the check, anything larger is a real reordering.
TIE_RTOL = 1e-5


def top_k_matches(served_rows: Sequence[int], scores: Any, k: int,
                  rtol: float = TIE_RTOL) -> bool:
    """Whether ``served_rows`` is the top ``k`` of ``scores``, in order, up to ties.

    The served item at rank r must score (by ``scores``) within ``rtol * max |top-k score|`` of
    the r-th best score, and the served items must be distinct candidates. So items may swap
    only with items they tie with, and where a tie straddles rank k the served items come from
    that tie; with rtol = 0 only exact ties may reorder. Never looser than that.

    Args:
        served_rows: int [m], the served items as indices into ``scores`` (-1: not an item).
        scores: float [n_items], the reference scores; -inf for items that are not candidates
            (already bought).
        k: the number of items asked for; fewer candidates than k: all of them expected.
        rtol: the tie tolerance, relative to the largest |score| of the reference top k.
    """
    import numpy as np

    scores = np.asarray(scores, np.float64)
    served = np.asarray(served_rows, np.int64).reshape(-1)
    best = np.sort(scores[np.isfinite(scores)])[::-1][:k]
    if len(served) != len(best) or len(set(served.tolist())) != len(served) or \
            not np.all((served >= 0) & (served < len(scores))):
        return False
    tolerance = rtol * float(np.abs(best).max()) if len(best) else 0.0
    return bool(np.all(np.abs(scores[served] - best) <= tolerance))


def _show_recommendations(result, target: str, name: str, path: Path) -> None:
    """Draws, for one customer, the last items they bought and the served top-10, and the top-10
    an unknown customer gets."""
    import numpy as np

    from tfrec_fashion_serving import client
    from tfrec_fashion.visualisation.item_grid import plot_item_grid

    dataset = result.dataset
    user = 0
    mine = dataset.interactions.user == user
    bought = dataset.interactions.item[mine][np.argsort(dataset.interactions.timestamp[mine])][-6:]
    rows = {str(item_id): row for row, item_id in enumerate(dataset.items.ids)}
    # recommend leaves out everything the customer bought, by default.
    answer = client.recommend(target, name, [str(dataset.users.ids[user]), "new-customer"],
                              k=SERVED_K)
    shown, captions = list(bought), [f"bought: {dataset.items.category[i]}" for i in bought]
    shown += [-1] * (SERVED_K - len(bought))  # blank cells: one row per group
    captions += [""] * (SERVED_K - len(bought))
    for row, label in ((0, "for"), (1, "cold")):
        for rank, (item_id, score) in enumerate(zip(answer["item_ids"][row],
                                                    answer["scores"][row]), 1):
            item = rows[item_id.decode() if isinstance(item_id, bytes) else str(item_id)]
            shown.append(item)
            captions.append(f"{label} #{rank} {dataset.items.category[item]} {score:.2f}")
    images = np.stack([dataset.items.images[i] if i >= 0 else
                       np.full_like(dataset.items.images[0], 255) for i in shown])
    plot_item_grid(images, captions, path, columns=SERVED_K,
                   title=f"{name}: customer {dataset.users.ids[user]} (top row: last purchases; "
                         "middle: served top-10; bottom: an unknown customer, cold start)")
    print(f"    recommendations: {path}")


def _newcomer_run(trained: dict, parts: dict) -> str | None:
    """The run whose served cold start the demo draws (``_show_newcomer``): the first that
    exports ``recommend_new_customer`` on a planted world with images, one that reads the survey
    (StyNet) before one that takes votes only (Partial Dual); None if there is none."""
    runs = [name for name, result in trained.items()
            if getattr(parts[name], "new_customer", None) is not None
            and result.dataset.items.images is not None
            and _planted_answers(result.dataset) is not None]
    return max(runs, key=lambda name: bool(parts[name].new_customer.survey), default=None)


def _planted_answers(world: FashionDataset) -> dict[str, np.ndarray] | None:
    """Every customer's true survey answers in the planted world (what ``favourite_colour`` and
    ``cares_most_about`` report when honest: the colour of their highest visual taste, their
    dominant compatibility subspace), question -> str [n_users]; None for a world without that
    truth."""
    import numpy as np

    from tfrec_fashion.data.synthetic_truth import dominant_subspace

    truth, metadata = world.truth or {}, world.metadata or {}
    values = metadata.get("attribute_values", [])
    colours = [column for column, value in enumerate(values) if value.startswith("colour=")]
    if not ({"user_item_score", "user_visual_taste", "user_subspace_weights"} <= set(truth)
            and colours and "subspace" in metadata.get("vocabularies", {})):
        return None
    names = np.array([values[column].split("=", 1)[1] for column in colours])
    return {"favourite_colour": names[truth["user_visual_taste"][:, colours].argmax(1)],
            "cares_most_about": np.array(metadata["vocabularies"]["subspace"])[
                dominant_subspace(world)[0]]}


NEWCOMER_VOTES = 5  # the newcomer loves this many items and leaves as many
NEWCOMER_TASTE_SHARE = 0.1  # "their taste": the top tenth of the catalogue by their planted score
NEWCOMER_GROUP = 5  # customers a persona needs (fewer only when no persona has that many)


def _show_newcomer(result, new_customer, target: str, name: str, path: Path) -> dict[str, Any]:
    """A new customer served from survey answers and 10 votes (``recommend_new_customer`` over
    gRPC) beside the mean customer (``recommend`` of an unknown id, the cold start), drawn as
    ``path``: the voted items, the newcomer's top-10 and the mean customer's.

    The newcomer is a persona of the planted world: the customers who share one pair of true
    survey answers (``_planted_answers``; at least ``NEWCOMER_GROUP`` of them), their mean
    planted score being the newcomer's taste. Of the personas, the one whose taste (the top
    ``NEWCOMER_TASTE_SHARE`` of the catalogue by that score) the mean customer's top-10 shows
    least: a newcomer the cold start serves worst. They answer the survey as the persona
    (answers the export knows; none for a votes-only model), love the ``NEWCOMER_VOTES`` items
    they score highest and leave the ``NEWCOMER_VOTES`` they score lowest. Both top-10s leave the
    voted items out. Returns the counts of each top-10 in the newcomer's taste and the summary's
    line (``newcomer``)."""
    import numpy as np

    from tfrec_fashion_serving import client
    from tfrec_fashion.visualisation.item_grid import plot_item_grid

    world = result.dataset
    items, answers = world.items, _planted_answers(world)
    ids = [str(item_id) for item_id in items.ids]
    rows = {item_id: row for row, item_id in enumerate(ids)}
    crowd = [rows[_text(i)] for i in client.recommend(target, name, ["new-customer"],
                                                      k=SERVED_K)["item_ids"][0]]
    personas: dict[tuple, list[int]] = {}
    for customer, key in enumerate(zip(*answers.values())):
        personas.setdefault(tuple(str(answer) for answer in key), []).append(customer)
    least = min(NEWCOMER_GROUP, max(len(members) for members in personas.values()))
    n_taste = max(1, round(NEWCOMER_TASTE_SHARE * len(ids)))

    def taste(members: list[int]) -> np.ndarray:  # items, best first by their mean score
        return np.argsort(-world.truth["user_item_score"][members].mean(axis=0), kind="stable")

    # Fewest of the mean customer's top-10 in the persona's taste; ties: the larger persona.
    key = min((key for key, members in personas.items() if len(members) >= least),
              key=lambda key: (np.isin(crowd, taste(personas[key])[:n_taste]).sum(),
                               -len(personas[key]), key))
    order = taste(personas[key])
    liked, left = order[:NEWCOMER_VOTES], order[::-1][:NEWCOMER_VOTES]
    low, high = (float(value) for value in new_customer.rating_range)
    votes = [(ids[i], high) for i in liked] + [(ids[i], low) for i in left]
    survey = {question: answer for question, answer in zip(answers, key)
              if answer in new_customer.survey.get(question, ())}
    answer = client.recommend_new_customer(target, name, [votes], k=SERVED_K,
                                           survey=survey or None)
    mean = client.recommend(target, name, ["new-customer"], k=SERVED_K,
                            exclude=[item for item, _ in votes])
    served = {"new": ([rows[_text(i)] for i in answer["item_ids"][0]], answer["scores"][0]),
              "mean": ([rows[_text(i)] for i in mean["item_ids"][0]], mean["scores"][0])}
    in_taste = set(order[:n_taste].tolist())
    hits = {who: sum(item in in_taste for item in picked) for who, (picked, _) in served.items()}
    said = ", ".join(f"{question}={answer}" for question, answer in survey.items())
    line = (f"newcomer ({name}, {said + ' and ' if said else ''}{len(votes)} votes): "
            f"{hits['new']} of the served top-{SERVED_K} in their planted taste (top "
            f"{n_taste} of {len(ids)} items), the mean customer's {hits['mean']} "
            f"({path.name})")
    cold = bool(mean["cold_start"][0]) and not bool(answer["cold_start"][0])
    print(f"=== query {name} (recommend_new_customer, official PredictionServiceStub): a "
          f"newcomer like the {len(personas[key])} customers whose planted answers are "
          f"{', '.join(key)}; cold start only for the unknown id: {cold}\n    {line}")

    shown = [*liked, *left]
    captions = [f"{'loves' if vote == high else 'leaves'} ({vote:+g}): {items.category[i]}"
                for i, (_, vote) in zip(shown, votes)]
    for who, (picked, scores) in served.items():
        shown += picked
        captions += [f"{who} #{rank} {items.category[i]} {s:.2f}{' *' if i in in_taste else ''}"
                     for rank, (i, s) in enumerate(zip(picked, scores), 1)]
    blank = np.full_like(items.images[0], 255)
    images = np.stack([items.images[i] for i in shown]
                      + [blank] * (-len(shown) % SERVED_K))
    captions += [""] * (len(images) - len(captions))
    plot_item_grid(images, captions, path, columns=SERVED_K,
                   title=f"{name}: a new customer, served from "
                         f"{'the survey (' + said + ') and ' if said else ''}{len(votes)} votes\n"
                         f"rows: their votes | their top-{SERVED_K} (recommend_new_customer) | "
                         f"the mean customer's (an unknown id)\n* in their planted taste (the "
                         f"top {n_taste} items of the {len(personas[key])} customers whose true "
                         f"answers these are): newcomer {hits['new']}/{SERVED_K}, mean customer "
                         f"{hits['mean']}/{SERVED_K}")
    print(f"    newcomer: {path}")
    return {"newcomer_in_taste_at_10": hits["new"],
            "mean_customer_in_taste_at_10": hits["mean"],
            "newcomer_differs_from_mean": set(served["new"][0]) != set(served["mean"][0]),
            "newcomer_cold_start_flags": cold, "newcomer": line}


def _show_items(world: FashionDataset, path: Path) -> None:
    """Writes a grid of the first items (with titles) of a world that has images."""
    from tfrec_fashion.visualisation.item_grid import plot_item_grid

    if world.items.images is None:
        return
    titles = world.items.titles if world.items.titles is not None else world.items.category
    shown = slice(0, 32)
    plot_item_grid(world.items.images[shown], list(titles[shown]), path,
                   title=f"{world.name}: items")
    print(f"    items: {path}")


def _show_trends(result, path: Path) -> None:
    """For a temporal model on interpretable features (I-TVBPR), plots the features whose
    appeal moved most over the time epochs (I-VBPR Figure 2)."""
    from tfrec_fashion.models.interactive import InteractiveRecommender
    from tfrec_fashion.training.model_configs import VBPRConfig
    from tfrec_fashion.visualisation.feature_trends import plot_feature_trends

    config = result.recipe.model_config
    # I-TVBPR is a VBPR config (I-VBPR's included) on attributes with time epochs.
    if not (isinstance(config, VBPRConfig) and config.feature_source == "attributes"
            and config.n_time_epochs >= 2):
        return
    interactive = InteractiveRecommender(result.model.parameters(), result.recipe.features,
                                         result.recipe.feature_names)
    trends = interactive.feature_popularity()
    plot_feature_trends(trends["values"], trends["feature_names"], path,
                        title=f"{config.name}: learned appeal of each attribute over time",
                        ylabel="visual bias beta'(t)")
    print(f"    trends: {path}")


# The summary's columns after every protocol's own (``Protocol.summary_columns``), shown when a
# run reports them (every metric is in summary.json).
RUN_COLUMNS = ("best_epoch", "train_seconds", "served_matches_keras",
               "served_partitioned_recall_at_10")


def _summary_table(results: dict[str, dict]) -> str:
    from tfrec_fashion.evaluation.protocols import summary_columns

    columns = [c for c in (*summary_columns(), *RUN_COLUMNS)
               if any(c in metrics for metrics in results.values())]
    lines = ["| run | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, metrics in results.items():
        cells = [_cell(metrics.get(c), digits=1 if c == "train_seconds" else 4)
                 for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
