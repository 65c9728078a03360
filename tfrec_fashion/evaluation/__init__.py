"""Evaluation: the papers' protocols (leave-one-out AUC, customer-level metrics, FITB) run over
trained models, and the tables they print, with the oracle row on synthetic worlds; the
baselines beside them (RAND / PopRank / VisRank for ranking; global mean, biases and ALS matrix
factorisation for ratings).

May import: data, metrics, models. Never imports export or serving.
"""
