"""Data: everything a model trains and is evaluated on.

Holds the project's dataset layout and its in-memory form, the planted synthetic world (the
embedded default, with ground-truth scores for oracle rows), loaders for the real datasets reachable
offline (Fashion-MNIST, MovieLens-100K), converters from public formats, splits, and the tf.data
pipelines and samplers models consume.

The synthetic world: ``synthetic`` (config, ``make_world``, what users import) over
``synthetic_sampling`` (observations) over ``synthetic_planting`` (the planted truth), with
``synthetic_truth`` (truth queries) and ``synthetic_render`` (images) at the bottom.

May import: numpy, scipy, PIL, tensorflow (tf.data). Never imports models, training or later stages.
"""
