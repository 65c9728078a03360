"""Evaluation: the papers' protocols run over trained models, the tables they print, and the
baselines beside them.

- ``protocols``: the registry of evaluation protocols (``Protocol``, ``PROTOCOLS``): for each,
  its name, its evaluation class, the table it builds from finished runs, the demo's summary
  columns and the reference lines of its training curves. Recipes declare a protocol by name,
  metrics.json records it, and ``tables`` / ``demo`` dispatch on it. Adding a protocol is one
  entry there (its docstring lists the steps).
- ``implicit``: leave-one-out split by time, per-user AUC on all and cold items, RAND / PopRank /
  VisRank and the planted oracle (``ImplicitEvaluation``).
- ``ratings``: per-customer 80/10/10 split of explicit ratings, RMSE / MAE and vote AUCs, beside
  global mean, user + item biases and ALS matrix factorisation (``RatingEvaluation``).
- ``pairs``: per-customer split of (top, bottom) pair votes, AUC / AUPRC / Recall@50% /
  Precision@10 pooled and per customer, beside the personal and the global oracle (PSA-Net).
- ``outfits``: per-user split of outfits, FITB / AUC / NDCG beside random, the global and the
  personal oracle (PAN's Tables 1-2, ``OutfitTable``).
- ``complete_the_look``: the same outfit split; triplet accuracy, FITB and outfit AUC of a style
  embedding on held-out outfits beside random, similar-as-complementary and the oracles, and
  similar-item precision@k (paper 004, ``CompleteTheLookTable``).
- ``design``: paper 003's Table IV and Fig. 3: top-3 images per (customer, category) from random
  real items, random generated ones, retrieval and synthesis (a ``Designer`` of arrays and
  callables), scored by preference, inception score, 1 - SSIM, the planted true taste and a
  Frechet distance, and the eta sweep (``DesignEvaluation``; ``design_table.DesignTable``);
  ``design_quality``: those measures and the project's cached image classifier.
- ``ranking_table`` (DVBPR's Table III) and ``rating_table``: the tables; ``baselines`` and
  ``rating_baselines``: the rows beside the model.

An evaluation takes what a model gives (user and item vectors, a predict function) as arrays
or callables, never a model or a recipe.

May import: data, metrics, models. Never imports training, export or serving.
"""
