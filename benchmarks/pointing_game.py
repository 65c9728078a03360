"""Evaluation on demand: do DVBPR's attention maps point where the customer's taste really is?

    .venv/bin/python benchmarks/pointing_game.py [RUN_DIR] [--users 6] [--items 16]
        [--dominance 0.6] [--methods gradcam gradcam++ scorecam saliency smoothgrad]

RUN_DIR is a finished DVBPR run on the planted world (default: the demo's,
``runs/demo/dvbpr_synthetic``; ``make demo`` writes it). For customers whose planted *visual*
taste is dominated by one attribute (colour, pattern or length: the share of the spread of their
visual score over the catalogue that the attribute carries is at least ``--dominance``), each
method maps the customer's own score on items where that attribute is drawn (non-empty region),
and the pointing game (``metrics.pointing_game``) scores the maps against the renderer's region
of that attribute (``data.synthetic.item_region_masks``): the share of maps whose peak falls in
the region and the mean share of each map's top 10% of pixels in it, beside chance (the region's
area). The control column maps, on the same items, the score of a customer dominated by another
attribute: a map that points at the garment whoever looks scores as high there, so only the
difference between the two columns says the map follows the customer's taste. Prints one row per
(method, attribute) and the pooled row per method, then each method's sanity line
(``visualisation.sanity``: model-parameter and customer randomisation on the first customer's
items).
"""

import argparse
import time

import numpy as np

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)

# isort: split
from tfrec_fashion.data.synthetic import item_region_masks
from tfrec_fashion.metrics import pointing_game
from tfrec_fashion.training.harness import load_run
from tfrec_fashion.visualisation.attention import (METHODS, attention_maps,
                                                   build_score_of_image, image_path)
from tfrec_fashion.visualisation.sanity import sanity_checks, sanity_line

ATTRIBUTES = ("colour", "pattern", "length")


def visual_dominance(world) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's dominant visual attribute (index into ``ATTRIBUTES``) and its share of
    the spread (standard deviation over items) of their planted visual score."""
    truth, vocab = world.truth, world.metadata["vocabularies"]
    taste, onehot = truth["user_visual_taste"], truth["item_attribute_onehot"]
    sizes = {name: len(vocab[name]) for name in ("category", *ATTRIBUTES)}
    offsets = np.cumsum([0, *sizes.values()])
    spread = []
    for name, start, stop in zip(sizes, offsets, offsets[1:]):
        if name != "category":
            spread.append((taste[:, start:stop] @ onehot[:, start:stop].T).std(axis=1))
    spread = np.stack(spread, axis=1)  # [U, 3]
    share = spread / spread.sum(axis=1, keepdims=True)
    return share.argmax(axis=1), share.max(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="runs/demo/dvbpr_synthetic")
    parser.add_argument("--users", type=int, default=6, help="customers per attribute")
    parser.add_argument("--items", type=int, default=16, help="items per customer")
    parser.add_argument("--dominance", type=float, default=0.6)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    config, recipe, model = load_run(args.run_dir)
    key = image_path({"name": config.model.name,
                      "feature_source": getattr(config.model, "feature_source", None)})
    world = recipe.dataset
    masks = item_region_masks(world)
    dominant, share = visual_dominance(world)
    rng = np.random.default_rng(0)
    chosen = []  # (attribute, user, items)
    for index, attribute in enumerate(ATTRIBUTES):
        users = np.flatnonzero((dominant == index) & (share >= args.dominance))
        users = users[np.argsort(-share[users])][:args.users]
        drawn = np.flatnonzero(masks[attribute].any(axis=(1, 2)))
        for user in users:
            chosen.append((attribute, int(user),
                           rng.choice(drawn, min(args.items, len(drawn)), replace=False)))
    counts = {a: sum(1 for c in chosen if c[0] == a) for a in ATTRIBUTES}
    print(f"{args.run_dir}: {config.model.name} on {world.name}; customers dominated "
          f"(share >= {args.dominance}) by colour / pattern / length: "
          f"{counts['colour']} / {counts['pattern']} / {counts['length']}, {args.items} items "
          "each\n")
    print("| method | attribute | maps | peak in region | top-10% in region | peak in region, "
          "another customer's map | chance (area) |")
    print("|---|---|---|---|---|---|---|")
    for method in args.methods:
        started = time.perf_counter()
        pooled: dict[str, list[np.ndarray]] = {}
        for attribute in ATTRIBUTES:
            maps, others, region = [], [], []
            mine = [c for c in chosen if c[0] == attribute]
            rest = [c[1] for c in chosen if c[0] != attribute]
            for position, (_, user, items) in enumerate(mine):
                # The control: a customer dominated by another attribute, on the same items.
                other = rest[position % len(rest)]
                score = build_score_of_image(key, recipe, model, [user, other])
                both = attention_maps(score, score.item_images[items], method)
                maps.append(both[0])
                others.append(both[1])
                region.append(masks[attribute][items])
            if not maps:
                continue
            maps, others = np.concatenate(maps), np.concatenate(others)
            region = np.concatenate(region)
            for name, values in (("maps", maps), ("others", others), ("masks", region)):
                pooled.setdefault(name, []).append(values)
            print(_row(method, attribute, pointing_game(maps, region),
                       pointing_game(others, region)))
        print(_row(f"**{method}**", "all",
                   pointing_game(np.concatenate(pooled["maps"]), np.concatenate(pooled["masks"])),
                   pointing_game(np.concatenate(pooled["others"]),
                                 np.concatenate(pooled["masks"])))
              + f"  <!-- {time.perf_counter() - started:.0f} s -->")
    _, user, items = chosen[0]
    images = build_score_of_image(key, recipe, model, [user]).item_images[items]
    print()
    for method in args.methods:
        checks = sanity_checks(key, recipe, model, [user], images, method)
        print(f"- {sanity_line(checks)}")


def _row(method: str, attribute: str, result: dict, control: dict) -> str:
    return (f"| {method} | {attribute} | {result['n_items']} | {result['peak']:.3f} | "
            f"{result['top_share']:.3f} | {control['peak']:.3f} | {result['chance']:.3f} |")


if __name__ == "__main__":
    main()
