"""Image size from the first bytes of a file (JPEG, PNG), without decoding pixels.

The Lambda checks boxes against image sizes without downloading images: a ranged read of the head
is enough. JPEG: walk the markers to the frame header (SOFn), skipping APPn segments (EXIF, ICC)
of any size; baseline, progressive and lossless frames all carry the size there. PNG: the IHDR chunk.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum

JPEG_SOI = b"\xff\xd8"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range but are no frame headers.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# Markers without a length field: TEM and RST0..7 (SOI/EOI are handled on their own).
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_OTHER_FORMATS = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"


@dataclass(frozen=True)
class ImageInfo:
    format: ImageFormat
    width: int
    height: int
    orientation: int = 1  # EXIF orientation; 5-8 mean the displayed image is transposed
    progressive: bool = False


class ImageHeaderError(ValueError):
    """The header is not a JPEG or PNG header we can read."""


class NeedMoreBytes(ImageHeaderError):
    """The head ended before the size was found; ``needed`` is the byte count worth reading next."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"header continues past byte {needed}")
        self.needed = needed


def read_image_info(head: bytes) -> ImageInfo:
    """Format and size from the first bytes of an image. Raise NeedMoreBytes or ImageHeaderError."""
    if not head:
        raise ImageHeaderError("is empty")
    if head.startswith(JPEG_SOI):
        return _jpeg_info(head)
    if head.startswith(PNG_SIGNATURE):
        return _png_info(head)
    if len(head) < len(PNG_SIGNATURE) and (JPEG_SOI.startswith(head[:2]) or PNG_SIGNATURE.startswith(head)):
        raise NeedMoreBytes(64)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        raise ImageHeaderError("is a WebP image: only JPEG and PNG are supported")
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            raise ImageHeaderError(f"is a {name} image: only JPEG and PNG are supported")
    raise ImageHeaderError(f"is not a JPEG or PNG image (starts with {head[:8].hex(' ')})")


def _png_info(head: bytes) -> ImageInfo:
    if len(head) < 33:
        raise NeedMoreBytes(33)
    length, kind = struct.unpack(">I4s", head[8:16])
    if kind != b"IHDR" or length != 13:
        raise ImageHeaderError("PNG header is damaged: the first chunk is not a 13-byte IHDR")
    (crc,) = struct.unpack(">I", head[29:33])
    if zlib.crc32(head[12:29]) != crc:
        raise ImageHeaderError("PNG header is damaged: IHDR checksum mismatch")
    width, height = struct.unpack(">II", head[16:24])
    _check_dims(width, height)
    return ImageInfo(ImageFormat.PNG, width, height)


def _jpeg_info(head: bytes) -> ImageInfo:
    orientation = 1
    pos = 2
    end = len(head)
    while True:
        if pos >= end:
            raise NeedMoreBytes(pos + 4096)
        if head[pos] != 0xFF:
            raise ImageHeaderError(f"JPEG header is damaged: no marker at byte {pos}")
        while pos < end and head[pos] == 0xFF:  # fill bytes may pad any marker
            pos += 1
        if pos >= end:
            raise NeedMoreBytes(pos + 4096)
        marker = head[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == 0xD9:
            raise ImageHeaderError("JPEG ends before its frame header (SOFn)")
        if marker == 0xDA:
            raise ImageHeaderError("JPEG scan starts before any frame header (SOFn)")
        if marker in (0x00, 0xD8):
            raise ImageHeaderError(f"JPEG header is damaged: unexpected marker 0xFF{marker:02X} at byte {pos - 1}")
        if pos + 2 > end:
            raise NeedMoreBytes(pos + 4096)
        (seglen,) = struct.unpack(">H", head[pos : pos + 2])
        if seglen < 2:
            raise ImageHeaderError(f"JPEG header is damaged: segment length {seglen} at byte {pos}")
        if marker in _SOF_MARKERS:
            if seglen < 8:
                raise ImageHeaderError(f"JPEG frame header is too short ({seglen} bytes)")
            if pos + 7 > end:
                raise NeedMoreBytes(pos + 7)
            height, width = struct.unpack(">HH", head[pos + 3 : pos + 7])
            if height == 0:
                raise ImageHeaderError("JPEG height 0 (set later by a DNL marker) is not supported")
            _check_dims(width, height)
            return ImageInfo(ImageFormat.JPEG, width, height, orientation, marker in _PROGRESSIVE_SOF)
        if marker == 0xE1 and orientation == 1:
            if pos + 8 > end:
                raise NeedMoreBytes(pos + 4096)
            if head[pos + 2 : pos + 8] == b"Exif\x00\x00":
                if pos + seglen > end:  # EXIF must be read whole to find the orientation
                    raise NeedMoreBytes(pos + seglen + 4096)
                orientation = exif_orientation(head[pos + 2 : pos + seglen])
        pos += seglen


def exif_orientation(segment: bytes) -> int:
    """EXIF orientation (1-8) from an APP1 payload; 1 when absent or unreadable (it never blocks)."""
    if not segment.startswith(b"Exif\x00\x00"):
        return 1
    tiff = segment[6:]
    if tiff[:4] == b"II*\x00":
        order = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        return 1
    try:
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
            if tag == 0x0112 and kind == 3:  # Orientation, SHORT
                (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
                return value if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def _check_dims(width: int, height: int) -> None:
    if width == 0 or height == 0:
        raise ImageHeaderError(f"image header says {width}x{height} pixels")
