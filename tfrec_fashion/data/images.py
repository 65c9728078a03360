"""Reading item images from disk with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfrec_fashion.errors import DataError, MissingDataError


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decodes an image file into uint8 RGB [height, width, 3], optionally resized to ``size``.

    Raises:
        MissingDataError: the file does not exist.
        DataError: the file exists but is not a decodable image (truncated, corrupt, not an image).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None:
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"image {path} is corrupt or not an image ({error})") from None
