"""Export (installed as ``tfrec_fashion_export``): trained models -> versioned SavedModels.

Writes ``<base>/<model>/<version>/`` atomically (a temporary directory, then one rename), with
named signatures, a TFRS retrieval index inside the SavedModel, warm-up requests and a
``models.config`` for TensorFlow Serving. A SavedModel written here loads with TensorFlow alone:
no project code, no custom ops; every export lists its graph's ops and is refused if one is not
in TensorFlow's op registry (``graph_ops``), so stock TF Serving can load whatever is published.
``gpu_kernels`` lists the ops of the signatures (and of a model's training step) that no GPU
kernel of this TensorFlow build accepts, each with why it belongs on the CPU (``check-ops --gpu``).

Layout of an export base::

    <base>/models.config                 TF Serving ModelServerConfig (text proto), one entry per
                                         model, base_path "/models/<model>" (the container path
                                         serving/docker-compose.yml mounts <base> at)
    <base>/<model>/<version>/            one SavedModel per version (1, 2, ...; integers only)
        saved_model.pb, variables/, assets/
        assets.extra/tf_serving_warmup_requests   TFRecord of PredictionLog (one Predict request
                                                  per signature, real user ids and an unknown one)
        assets.extra/tfrec_fashion.json           what was exported: model, run, dims, counts,
                                                  the index (and its recall@10), the graph's ops
        assets.extra/ann/                         optional approximate index (``--index scann``)
        assets.extra/catalogue.json, thumbnails.png / .json, attention/
                                                  what the browse page shows (``browse.py``:
                                                  ids and categories; item images and attention
                                                  maps when the run has them)
    <base>/<model>/.tmp-<version>-*      an export in progress: not an integer, so no server
                                         (ours or TF Serving) ever loads it

Signatures (every export; ids are the dataset's string ids; declared once in
``tfrec_fashion_serving.contract``, which the module's tf.functions, the warm-up records, the
client and the serving tests' toy model all use, and every export is tested against):

    recommend  (also serving_default)
        inputs   user_id           string [B]        required
                 k                 int32  [B]        default [10]; 1 <= k <= n_items
                 category          string [B]        default [""] (any); else only that category
                 exclude_item_ids  string [B, M]     default shape [1, 0]; "" entries are padding
                 exclude_seen      bool   [B]        default [True]: leave out what the user
                                                     already bought (every interaction the
                                                     training dataset holds)
        outputs  item_ids          string [B, K]     K = max(k); rows padded with ""
                 scores            float32 [B, K]    padded with -inf
                 cold_start        bool   [B]        the user id was unknown: the cold-start query
        Inputs of batch size 1 are broadcast over the batch (so the defaults work for any B).
        Retrieval is a ``tfrs.layers.factorized_top_k.BruteForce`` index over the item vectors
        (exact inner product; a category filter is part of the index, see ``index.py``), or with
        ``index="partitioned"`` the approximate ``PartitionedTopK`` (k-means partitions, stock
        ops; returned scores exact, recall@10 measured at export). Unknown
        users get the cold-start query: the mean of the trained user vectors ("the average
        customer"), flagged by ``cold_start``.
    score
        inputs   user_id string [B], item_ids string [B, N]
        outputs  scores float32 [B, N], cold_start bool [B]; an unknown item id is an error
    user_query
        inputs   user_id string [B]
        outputs  query float32 [B, D] (the vector ``recommend`` searches with), cold_start bool [B],
                 seen_item_ids string [B, S] (what each user bought, padded with "")
    embed_item   (models that see item content: VBPR family, DVBPR; not BPR-MF / two-tower)
        inputs   image float32 [B, H, W, 3] in [0, 1]   (DVBPR; VBPR on EfficientNet features)
                 or features float32 [B, F]              (VBPR on dataset features / attributes)
        outputs  embedding float32 [B, D]: the item's vector in the index space, so a new item
                 is scored against ``user_query`` without retraining
    recommend_new_customer   (models that fold a new customer in: Partial Dual, StyNet)
        inputs   voted_item_ids    string [B, M]     required; "" entries are padding, so rows
                                                     hold different numbers of votes
                 votes             float32 [B, M]    required; each in the model's rating range
                                                     (ignored where the id is "")
                 k, category, exclude_item_ids       as ``recommend``
                 exclude_voted     bool   [B]        default [True]: leave out the voted items
                 survey_questions, survey_answers    string [B, Q] (StyNet only: models whose
                                                     customer tower reads a survey), default
                                                     shape [1, 0] (no answers); "" question:
                                                     padding, "" answer: no answer
        outputs  item_ids, scores  as ``recommend``: the index searched with each row's query
                 query             float32 [B, D]    the folded-in query (the layout of
                                                     ``user_query``'s: [a, b_c, 1] with biases)
                 cold_start        bool   [B]        the row held no votes (nor survey answers):
                                                     the cold-start query
        An unknown item id, survey question or answer ("question=answer") or a vote outside
        the rating range is INVALID_ARGUMENT naming it; no votes at all is answered from the
        survey, and with no answers either it is the cold-start answer (the mean customer,
        ``cold_start``), never an error.

Bad inputs (k out of range, unknown category or item id) fail inside the graph with
``InvalidArgumentError``, which TF Serving and our server return as INVALID_ARGUMENT.

Heads: the signatures above are the **retrieval** head; pair-compatibility models (PSA-Net and
its kin) export through the **compatibility** head (``complete_pair`` = serving_default,
``score_pairs``; ``contract.COMPATIBILITY``); complete-the-look models through the item-to-item
**look** head (``complementary`` = serving_default, ``similar``; ``contract.LOOK``: by item id or
a new product's image, cosine through the retrieval index, brute force or partitioned, no
customer); the design GAN through the **generation** head (``design`` = serving_default;
``contract.GENERATION``: a customer's new images in a category, the preference maximisation
running inside the graph). ``heads.HEADS`` maps a head to its module, its warm-up requests and
its description; the parts' ``HEAD`` chooses it.

Modules: ``runs.export_run`` (a run directory -> a version; ``tfrec-fashion export``: reads only
``<run_dir>/serving``, the parts the run wrote when training ended, never the dataset or the
feature extractors), ``heads`` (head -> module, warm-up, description), ``module.RecommenderModule``
(the retrieval signatures), ``compatibility.CompatibilityModule`` (the compatibility
signatures), ``look.LookModule`` (the look signatures), ``design.DesignModule`` (the
generation signature), ``index`` (``FilteredBruteForce``, the
TFRS index with its category filter; ``FilteredPartitioned``, the approximate one; the
export-time recall check),
``writer.export_parts`` (atomic versions, warm-up, description, op check), ``graph_ops`` (a
SavedModel's ops against TensorFlow's registry), ``tf_serving_config`` (models.config),
``ann_index`` (the optional ScaNN index beside the SavedModel), ``browse`` (the browse page's
catalogue, thumbnails and attention maps beside it).

Adding a model: its recipe's ``serving_parts(model)`` returns its head's parts
(``tfrec_fashion.training.serving_parts``); for the retrieval head the default does it from
``user_vectors(model)`` and ``item_vectors(model)`` (scores are their inner products) and, if
it sees item content, ``item_embedder(model)``. Nothing here changes.

May import: tfrec_fashion, tensorflow, tensorflow_recommenders, tensorflow_serving, and the
pieces of tfrec_fashion_serving that define TF Serving's formats, so each is written once:
``contract`` (the signatures, warm-up inputs and file names), ``model_config`` (models.config,
versions on disk), ``client.predict_request`` (warm-up records), ``ann`` (the ScaNN import
helper). Never the reverse: serving imports no project code.
"""
