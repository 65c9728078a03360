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
- ``movielens``: MovieLens ``u.data`` (100K), ``ratings.dat`` (1M, 10M), ``ratings.csv`` (20M and
  later, ml-latest), with titles and genres from the movies file beside them.
- ``table``: a user's own interaction or rating log as CSV (``csv``) or Parquet (``parquet``),
  columns chosen by name.

``CONVERTERS`` (the one list of formats: the CLI's help and its errors read it) maps a format
name to ``convert(*sources, output_dir, **options) ->
FashionDataset``: the positional arguments are the format's input files or folder followed by
the output folder (the CLI's ``tfrec-fashion data convert <format> <sources...> --out <dir>``),
or ``output_dir=`` is given by keyword. Every converter validates its input and raises
``DataError`` naming the file and line (or record) of malformed input, counts what it skips in
``metadata["skipped"]`` (and logs it), writes all or nothing into a new or empty folder via
``FashionDataset.save``, and returns the dataset. Extra tables a format has beyond the layout
(splits, FITB questions, negatives) are written beside it and listed in
``metadata["extra_files"]``.

May import: numpy, PIL, tqdm, pyarrow (``parquet`` only, imported when used) and
``tfrec_fashion.data``; never models or later stages.
"""

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tfrec_fashion.data.dataset import FashionDataset

# Format name -> (module, function). Modules load on first use, so listing the formats (the
# CLI's --help) costs no import.
_FORMATS: dict[str, tuple[str, str]] = {
    "amazon": ("amazon", "convert"),
    "dvbpr": ("dvbpr", "convert"),
    "tradesy": ("tradesy", "convert"),
    "polyvore_u": ("polyvore_u", "convert"),
    "polyvore_outfits": ("polyvore_outfits", "convert"),
    "pinterest": ("pinterest", "convert"),
    "pinterest_stl": ("pinterest", "convert_stl"),
    "pinterest_ctl": ("pinterest", "convert_ctl"),
    "movielens": ("movielens", "convert"),
    "csv": ("table", "convert_csv"),
    "parquet": ("table", "convert_parquet"),
}


class _Converters(Mapping):
    """Format name -> its ``convert`` function, imported when first looked up."""

    def __getitem__(self, name: str) -> Callable[..., "FashionDataset"]:
        module, function = _FORMATS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)

    def __iter__(self) -> Iterator[str]:
        return iter(_FORMATS)

    def __len__(self) -> int:
        return len(_FORMATS)


CONVERTERS: Mapping[str, Callable[..., "FashionDataset"]] = _Converters()

__all__ = ["CONVERTERS"]
