"""Losses: the papers' objectives (BPR, contrastive, triplet, LSGAN, user-specific ranking) as
Keras losses, each written once and reused by every model that needs it.

May import: tensorflow. Never imports data, models or later stages.
"""
