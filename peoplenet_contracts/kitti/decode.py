"""Full image decode with Pillow, to catch truncated or corrupt images that have a sound header.

Pillow is imported inside these functions only: the Lambda (no Pillow) validates headers alone.
"""

from __future__ import annotations

import io

from peoplenet_contracts.kitti.image_header import ImageFormat, ImageInfo

_TAIL = 4096  # the end marker may be followed by a little padding or a camera trailer


def ensure_decoder() -> None:
    """Raise ImportError with what to install when Pillow is missing."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError as exc:
        raise ImportError("a full image decode needs Pillow: pip install pillow (or validate without decode)") from exc


def decode_problems(data: bytes, info: ImageInfo | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) from decoding every pixel of one image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            size = image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return [f"cannot be decoded: {exc}"], []
    errors: list[str] = []
    warnings: list[str] = []
    if info is not None and size != (info.width, info.height):
        errors.append(f"decodes to {size[0]}x{size[1]} but its header says {info.width}x{info.height}")
    # Pillow pads a cut-off image silently when ImageFile.LOAD_TRUNCATED_IMAGES is set somewhere.
    if info is not None and info.format is ImageFormat.JPEG and b"\xff\xd9" not in data[-_TAIL:]:
        warnings.append("no JPEG end-of-image marker: the file may be truncated")
    if info is not None and info.format is ImageFormat.PNG and b"IEND" not in data[-_TAIL:]:
        warnings.append("no PNG IEND chunk: the file may be truncated")
    return errors, warnings
