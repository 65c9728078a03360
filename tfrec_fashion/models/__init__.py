"""Models: one file per model family, read top to bottom as its paper's section.

Each model is a Keras subclass trained with ``model.fit``, usually of ``base.RecommenderModel``
(``tfrs.Model`` with its regularisation scaled for the replicas); towers are built in
``__init__``, the loss in ``compute_loss``. Every ranking model scores by an inner product of
its ``user_vectors()`` and ``item_vectors()``, so one retrieval index serves them all.
``interactive.py`` (I-VBPR's affinity, refinement and trends) is NumPy over a trained model's
``parameters()``, so it runs without TensorFlow. ``partial_dual/`` (PSA-Net's customer
embeddings by squared-trace-norm matrix completion) is NumPy/SciPy with its own Riemannian
solvers, the one model not trained with ``fit``; ``stynet.py`` is its neural alternative.
``pair_compatibility.py`` scores pairs of items (a distance between item embeddings, contrastive
loss): the compatibility serving head's minimal model, PSA-Net without the customer;
``psa_net.py`` is PSA-Net itself (subspace masks mixed by attention on a customer's fixed
embedding); ``pan.py`` scores whole outfits for a customer from binary codes (PAN, with
user-aware attention, and FHN as its switch); ``complete_the_look.py`` embeds any item's
content in a unit style space where items worn together lie close (triplet loss, paper 004);
``lsgan.py`` is paper 003's conditional LSGAN G(z, c), D(x, c) of the catalogue's images, and
``design.py`` its preference maximisation (eq. 9-12): an Adam ascent on the GAN's latent code
in a ``tf.while_loop`` against a DVBPR customer's theta_u . Phi, generic over any differentiable
generator, discriminator and Phi, the one implementation the evaluation, the CLI and the served
``design`` signature share.

May import: layers, losses, metrics, tasks, tensorflow, tensorflow_recommenders. Never imports data
loaders, training, export or serving.
"""
