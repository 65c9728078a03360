"""Tasks, in TensorFlow Recommenders' sense: a loss together with the metrics that watch it, so a
model is its towers plus a task (``tfrs.tasks.Ranking`` / ``Retrieval`` for the two-tower
models, ``BprRanking`` here for the pairwise ranking models).

    bpr.py   BprRanking: BPR's per-triplet loss (``losses.bpr``) plus a model's per-triplet
             penalty, averaged so that replica gradients stay a mean under tf.distribute, and
             the pairwise accuracy metric (share of triplets ranked right, BPR's training AUC);
             used by BPR-MF, VBPR, TVBPR, I-VBPR and DVBPR.
    pairs.py ContrastivePairs: the contrastive loss of +1 / -1 pair votes on a pair's distance
             (PSA-Net's, paper 000 section 3) and its pair accuracy; used by PairCompatibility
             and PSANet. TripletPairs: the triplet loss against a random third image (the
             paper's ablation, section 7.2.2); PSANet with ``loss="triplet"``.
    outfits.py OutfitRanking: PAN's losses (paper 001): BPR over (user, positive outfit,
             negative outfit), the user-specific loss over (outfit, its user, another user) and
             the visual-semantic embedding loss (``visual_semantic_loss``), eq. 6-9.
    triplets.py StyleTriplets: complete the look's triplet loss (``losses.triplet``, paper 004)
             on (anchor, positive, negative) style embeddings and its triplet accuracy; used by
             CompleteTheLook.

May import: tensorflow, losses, metrics. Never imports data, models or later stages.
"""
