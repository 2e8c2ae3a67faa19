import base64
import hashlib
import math
import random
import struct
import zlib
from collections import Counter

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import qr

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

URLS = [
    "https://8here.in/ab",
    "https://8here.in/launch-page",
    "https://8here.in/" + "a1-" * 21 + "z",  # the longest slug, 64 characters
    "http://localhost:8080/abc",
    "HTTPS://8HERE.IN/ABC",  # alphanumeric mode
    "https://8here.in/launch?utm_source=news&utm_medium=email&x=a%20b#top",
    "https://8here.in/%E2%9C%93-ok%20space",
    "https://8here.in/straße-✓",
    "https://8here.in/日本語",
    "https://example.com/" + "path/" * 56,  # 300 characters
]


def read_opencv(png: bytes) -> str:
    """OpenCV's reader; its ArUco-based detector is tried when the classic one finds nothing."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    text = cv2.QRCodeDetector().detectAndDecode(image)[0]
    # The classic detector misses ~2% of valid symbols (segno's own PNGs of them too).
    return text or cv2.QRCodeDetectorAruco().detectAndDecode(image)[0]


def pixels(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def png_chunks(png: bytes) -> dict[bytes, bytes]:
    assert png.startswith(PNG_SIGNATURE)
    chunks, at = {}, len(PNG_SIGNATURE)
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length : at + 12 + length])[0] == zlib.crc32(
            kind + data
        )
        assert kind not in chunks
        chunks[kind] = data
        at += 12 + length
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]
    return chunks


def expected_image(url: str) -> np.ndarray:
    """The symbol drawn with numpy: white 255, dark 0, 4-module border, scaled."""
    modules = np.array([list(row) for row in qr.qr_matrix(url)], dtype=np.uint8)
    modules = np.pad(modules, 4)
    scale = math.ceil(256 / len(modules))
    return np.kron(1 - modules, np.ones((scale, scale), np.uint8)) * 255


@pytest.mark.parametrize("url", URLS)
def test_opencv_reads_the_url(url: str) -> None:
    assert read_opencv(qr.qr_png(url)) == url


@pytest.mark.parametrize("url", URLS)
def test_zxing_reads_the_url(url: str) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    image = pixels(qr.qr_png(url))
    assert [code.text for code in zxingcpp.read_barcodes(image)] == [url]


@pytest.mark.parametrize("url", URLS)
def test_image_is_square_print_size_with_quiet_zone(url: str) -> None:
    image = pixels(qr.qr_png(url))
    height, width = image.shape
    assert width == height >= 256
    # Scale from the image alone: the top-left finder pattern starts with a run of 7 dark modules.
    dark = np.argwhere(image == 0)
    top, left = dark.min(axis=0)
    run = np.argmax(image[top, left:] == 255)
    scale = run // 7
    assert run == 7 * scale and top == left == 4 * scale
    quiet = 4 * scale
    for border in (image[:quiet], image[-quiet:], image[:, :quiet], image[:, -quiet:]):
        assert (border == 255).all()
    modules = width // scale
    assert width == modules * scale and scale == math.ceil(256 / modules)
    assert np.array_equal(image, expected_image(url))


@pytest.mark.parametrize("url", URLS)
def test_png_is_1_bit_grayscale_and_inflates_to_the_pixels(url: str) -> None:
    chunks = png_chunks(qr.qr_png(url))
    width, height, depth, color, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[b"IHDR"]
    )
    assert (depth, color, compression, filtering, interlace) == (1, 0, 0, 0, 0)
    image = expected_image(url)
    assert (height, width) == image.shape
    rows = np.packbits(image == 255, axis=1)
    expected = b"".join(b"\0" + row.tobytes() for row in rows)
    assert zlib.decompress(chunks[b"IDAT"]) == expected  # also checks the Adler-32


@pytest.mark.parametrize("url", URLS[:3])
def test_base64_is_raw_png(url: str) -> None:
    text = qr.qr_png_base64(url)
    assert isinstance(text, str) and text.isascii()
    assert not text.startswith("data:")
    png = base64.b64decode(text, validate=True)
    assert png.startswith(PNG_SIGNATURE)
    assert png == qr.qr_png(url)


def test_rendering_is_deterministic_and_cached() -> None:
    url = "https://8here.in/cache-me"
    first = qr.qr_png(url)
    assert qr.encode_png(qr.qr_matrix(url)) == first
    before = qr.qr_png.cache_info().hits
    assert qr.qr_png(url) is first
    assert qr.qr_png.cache_info().hits == before + 1
    assert qr.qr_png_base64(url) is qr.qr_png_base64(url)


def test_same_bytes_on_every_machine() -> None:
    # The PNG does not depend on the zlib build. A change here (a segno upgrade, an encoder
    # change) changes every `qrCodeBase64` users may have recorded: make it on purpose.
    png = qr.encode_png(qr.qr_matrix("https://8here.in/launch-page"))
    assert hashlib.sha256(png).hexdigest() == (
        "a454abd68235e857497dd4a84ac6a4a14e9a98b21d5fe0df811d861e2508ba17"
    )


@settings(max_examples=30, deadline=None)
@given(slug=st.from_regex(r"[a-z0-9][a-z0-9-]{1,62}[a-z0-9]", fullmatch=True))
def test_short_urls_read_back(slug: str) -> None:
    url = "https://8here.in/" + slug
    assert read_opencv(qr.qr_png(url)) == url


@settings(max_examples=50, deadline=None)
@given(
    width=st.integers(3, 40),
    rows=st.lists(st.binary(min_size=40, max_size=40), min_size=1, max_size=30),
    repeat=st.integers(1, 12),
)
def test_deflate_round_trips(width: int, rows: list[bytes], repeat: int) -> None:
    lines = [row[:width] for row in rows]
    data = qr._deflate(lines, repeat)
    assert zlib.decompress(data, -15) == b"".join(line * repeat for line in lines)


@pytest.mark.parametrize("between", [1, 2])  # a copy from 30,300 bytes back; too far back
def test_deflate_copies_within_the_window(between: int) -> None:
    rng = random.Random(between)
    x, *others = (rng.randbytes(300) for _ in range(1 + between))
    lines = [x, *others, x]
    data = qr._deflate(lines, 100)
    assert zlib.decompress(data, -15) == b"".join(line * 100 for line in lines)


def test_deflate_needs_lines_of_3_bytes() -> None:
    with pytest.raises(ValueError):
        qr._deflate([b"ab"], 2)


def test_deflate_limits_code_lengths() -> None:
    # Fibonacci frequencies give a Huffman tree deeper than deflate's 15-bit limit.
    fib = [1, 1]
    while len(fib) < 24:
        fib.append(fib[-1] + fib[-2])
    line = b"".join(bytes([i]) * n for i, n in enumerate(fib))
    line = bytes(random.Random(0).sample(line, len(line)))  # no long runs
    assert zlib.decompress(qr._deflate([line], 1), -15) == line
    freq = Counter(dict(enumerate(fib)))
    assert max(qr._code_lengths(freq, 286, 99)) > 15
    lengths = qr._code_lengths(freq, 286, 15)
    assert max(lengths) <= 15
    assert sum(2.0**-n for n in lengths if n) <= 1
