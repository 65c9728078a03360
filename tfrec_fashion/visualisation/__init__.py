"""Visualisation: attention maps (tf-keras-vis), PAN spatial attention, GAN design grids, trend
plots and training curves, written as PNG files a person can open.

May import: data, models, evaluation, matplotlib, tf_keras_vis. Never imports export or serving.
"""
