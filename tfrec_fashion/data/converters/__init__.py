"""Converters from public fashion-recommendation formats to the project's dataset layout.

One module per public format, each documenting the exact files and fields it reads (and the
paper / repository that defines them):

- ``amazon``: McAuley's Amazon reviews (2014 loose-JSON and 2018 JSON lines), item metadata and
  VBPR's binary ``image_features_<Category>.b``.
- ``dvbpr``: DVBPR's partitioned ``*ImgPartitioned.npy`` (interactions + JPEG images).
- ``tradesy``: VBPR's ``tradesy.json`` user lists and ``image_features_tradesy.b``.
- ``polyvore_u``: Polyvore-U of FHN / PAN (``tuples_<n>`` folders, image lists, splits, FITB).
- ``polyvore_outfits``: Polyvore Outfits of the type-aware embedding paper (metadata, splits,
  FITB and compatibility questions, images).
- ``pinterest``: Pinterest Shop The Look (scene-product JSON lines) and Complete The Look (TSV
  outfits), with complete-the-look triplet sampling.

``CONVERTERS`` maps a format name to ``convert(*sources, output_dir, **options) ->
FashionDataset``: the positional arguments are the format's input files or folder followed by
the output folder (the CLI's ``tfrec-fashion data convert <format> <sources...> --out <dir>``),
or ``output_dir=`` is given by keyword. Every converter validates its input and raises
``DataError`` naming the file and line (or record) of malformed input, counts what it skips in
``metadata["skipped"]`` (and logs it), writes all or nothing into a new or empty folder via
``FashionDataset.save``, and returns the dataset. Extra tables a format has beyond the layout
(splits, FITB questions, negatives) are written beside it and listed in
``metadata["extra_files"]``.

May import: numpy, PIL, tqdm and ``tfrec_fashion.data``; never models or later stages.
"""

from collections.abc import Callable

from tfrec_fashion.data.converters import (
    amazon,
    dvbpr,
    pinterest,
    polyvore_outfits,
    polyvore_u,
    tradesy,
)
from tfrec_fashion.data.dataset import FashionDataset

CONVERTERS: dict[str, Callable[..., FashionDataset]] = {
    "amazon": amazon.convert,
    "dvbpr": dvbpr.convert,
    "tradesy": tradesy.convert,
    "polyvore_u": polyvore_u.convert,
    "polyvore_outfits": polyvore_outfits.convert,
    "pinterest": pinterest.convert,
    "pinterest_stl": pinterest.convert_stl,
    "pinterest_ctl": pinterest.convert_ctl,
}

__all__ = ["CONVERTERS"]
