"""Models: one file per model family, read top to bottom as its paper's section.

Each model is a Keras (usually ``tfrs.Model``) subclass trained with ``model.fit``; towers are built
in ``__init__``, the loss in ``compute_loss``.

May import: layers, losses, metrics, tensorflow, tensorflow_recommenders. Never imports data
loaders, training, export or serving.
"""
