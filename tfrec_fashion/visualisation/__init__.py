"""Visualisation: attention maps (tf-keras-vis) of a customer's score of an item image
(``attention.py``: one score-of-image per image model, five methods, the grid PNG;
``score_of_image.py``: what an entry builds; ``sanity.py``: the randomisation checks), PAN's own
user-aware spatial attention (``pan_attention.py``, the paper's Fig. 3), complete the look's
compatibility of an anchor item with an item's image (``look_attention.py``) and its served
similar / complementary items per query product (``look_grid.py``), customers' preference over
a design GAN's images (``design_attention.py``), GAN design grids, trend
plots, training curves and how fast newcomers become known (``newcomers.py``), written as PNG files a person can
open; and the run report (``report.py``): those files of a run directory or the demo's workdir,
with its tables, on one self-contained HTML page.

May import: errors, config, data, layers, models, evaluation, training (``load_run``),
matplotlib, tf_keras_vis.
Never imports export or serving.
"""
