"""Evaluation: the papers' protocols (leave-one-out AUC, customer-level metrics, FITB) run over
trained models, and the tables they print, with the oracle row on synthetic worlds.

May import: data, metrics, models. Never imports export or serving.
"""
