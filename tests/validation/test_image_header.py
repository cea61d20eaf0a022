"""Image sizes from headers agree with Pillow's, on real photos and on JPEG/PNG variants."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from peoplenet_contracts.kitti import (
    ImageFormat,
    ImageHeaderError,
    InMemoryDatasetSource,
    LocalDatasetSource,
    NeedMoreBytes,
    probe_image,
    read_image_info,
)


def _pillow_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _exif(orientation: int, padding: int = 0) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if padding:
        exif[0x010E] = "x" * padding  # ImageDescription: a large APP1 segment before the frame header
    return exif.tobytes()


def _variants() -> dict[str, bytes]:
    rgb = Image.new("RGB", (123, 45), (10, 200, 30))
    return {
        "baseline": _encode(rgb, "JPEG", quality=80),
        "progressive": _encode(rgb, "JPEG", progressive=True),
        "grayscale": _encode(rgb.convert("L"), "JPEG"),
        "cmyk": _encode(rgb.convert("CMYK"), "JPEG"),
        "exif-rotated": _encode(rgb, "JPEG", exif=_exif(6)),
        "exif-60k": _encode(rgb, "JPEG", exif=_exif(1, padding=60_000)),
        "icc-200k": _encode(rgb, "JPEG", icc_profile=b"\0" * 200_000),  # several chained APP2 segments
        "png-rgb": _encode(rgb, "PNG"),
        "png-rgba": _encode(rgb.convert("RGBA"), "PNG"),
        "png-palette": _encode(rgb.convert("P"), "PNG"),
        "png-16bit": _encode(Image.new("I;16", (7, 3000)), "PNG"),
    }


def test_real_photos_match_pillow(sample_dir: Path, sample_val_dir: Path) -> None:
    paths = sorted([*sample_dir.glob("images/*.jpg"), *sample_val_dir.glob("images/*.jpg")])
    assert len(paths) == 26
    for path in paths:
        info = read_image_info(path.read_bytes()[:65536])
        assert (info.width, info.height) == _pillow_size(path.read_bytes()), path
        assert info.format is ImageFormat.JPEG


@pytest.mark.shared
def test_coco_kitti_photos_match_pillow(coco_kitti: Path) -> None:
    """Through a source: at least one of them keeps its frame header past the first 64 KiB (XMP, ICC)."""
    long_headers = 0
    for split in ("train", "val"):
        source = LocalDatasetSource(coco_kitti / split)
        for path in sorted((coco_kitti / split).glob("images/*.jpg")):
            data = path.read_bytes()
            info = probe_image(source, f"images/{path.name}", len(data))
            assert (info.width, info.height) == _pillow_size(data), path
            try:
                read_image_info(data[:65536])
            except NeedMoreBytes:
                long_headers += 1
    assert long_headers >= 1


@pytest.mark.parametrize("name", sorted(_variants()))
def test_variants_match_pillow_through_a_source(name: str) -> None:
    data = _variants()[name]
    source = InMemoryDatasetSource({"images/x.jpg": data})
    info = probe_image(source, "images/x.jpg", len(data))
    assert (info.width, info.height) == _pillow_size(data)
    assert info.format is (ImageFormat.PNG if name.startswith("png") else ImageFormat.JPEG)
    assert info.progressive is (name == "progressive")
    assert info.orientation == (6 if name == "exif-rotated" else 1)


def test_large_app_segments_need_a_second_read() -> None:
    data = _variants()["icc-200k"]
    with pytest.raises(NeedMoreBytes) as more:
        read_image_info(data[:65536])
    assert 65536 < more.value.needed <= len(data)


def test_probe_reads_only_the_head(sample_dir: Path) -> None:
    """A 64 KiB head suffices for a normal photo: the source is never asked for more."""
    path = sorted(sample_dir.glob("images/*.jpg"))[0]
    reads: list[int] = []

    class CountingSource(LocalDatasetSource):
        def read_head(self, rel: str, nbytes: int) -> bytes:
            reads.append(nbytes)
            return super().read_head(rel, nbytes)

    info = probe_image(CountingSource(sample_dir), f"images/{path.name}", path.stat().st_size)
    assert reads == [65536]
    assert (info.width, info.height) == _pillow_size(path.read_bytes())


def _png_with_bad_crc() -> bytes:
    data = bytearray(_variants()["png-rgb"])
    data[29:33] = struct.pack(">I", 0)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"GIF89a" + b"\0" * 20, "GIF image"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "WebP image"),
        (b"hello world, not an image", "not a JPEG or PNG"),
        (b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 20, "scan starts before any frame header"),
        (b"\xff\xd8\xff\xd9", "ends before its frame header"),
        (b"\xff\xd8\x12\x34", "no marker at byte 2"),
        (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x00" + b"\0" * 12, "height 0"),
        (_png_with_bad_crc(), "IHDR checksum mismatch"),
    ],
)
def test_garbled_headers_are_errors(data: bytes, message: str) -> None:
    with pytest.raises(ImageHeaderError, match=message):
        read_image_info(data)


def test_cut_off_header_is_reported_as_such() -> None:
    data = _variants()["exif-60k"][:1000]  # the whole file is 1000 bytes: the header never ends
    source = InMemoryDatasetSource({"images/x.jpg": data})
    with pytest.raises(ImageHeaderError, match="cut off before its header"):
        probe_image(source, "images/x.jpg", len(data))
