"""Data: everything a model trains and is evaluated on.

Holds the project's dataset layout and its in-memory form, the planted synthetic world (the
embedded default, with ground-truth scores for oracle rows), loaders for the real datasets reachable
offline (Fashion-MNIST, MovieLens-100K), converters from public formats, splits, and the tf.data
pipelines and samplers models consume.

May import: numpy, scipy, PIL, tensorflow (tf.data). Never imports models, training or later stages.
"""
