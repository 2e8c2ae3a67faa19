"""QR codes for `qrCodeBase64`: a URL becomes a print-ready PNG, cached. The only import of segno.

segno builds the module matrix: error correction M, the smallest version, no boosting, UTF-8. The
PNG is written here: 1-bit grayscale, a 4-module quiet zone, `ceil(256 / (modules + 8))` pixels
per module so the image is at least 256 pixels wide. Its IDAT is compressed by the small deflate
encoder below, not by `zlib.compress`, whose output depends on the zlib build (zlib-ng, as on
Fedora or in CPython 3.14 for Windows, compresses the same data to other bytes); so the same URL
gives the same bytes on every machine. `zlib` is used only for its checksums.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import struct
import zlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import segno

ERROR_LEVEL = "m"
BORDER = 4  # modules of quiet zone on each side
MIN_WIDTH = 256  # pixels
# Enough for every sandbox link and a busy live session. A short URL's PNG plus its base64 is about
# 1.5 KB, so both caches full hold ~6 MB. Scale sets evict the least recently used codes.
CACHE_SIZE = 4096
_AS_BITS = bytes.maketrans(b"\0\1", b"10")  # a module as one pixel: light 1, dark 0


@lru_cache(maxsize=CACHE_SIZE)
def qr_png(url: str) -> bytes:
    """The QR code of `url` as PNG bytes (cached: the same object on a hit)."""
    return encode_png(qr_matrix(url))


@lru_cache(maxsize=CACHE_SIZE)
def qr_png_base64(url: str) -> str:
    """`qr_png(url)` as raw base64 (no `data:` prefix), as in `qrCodeBase64`."""
    return base64.b64encode(qr_png(url)).decode("ascii")


def qr_matrix(url: str) -> list[bytes]:
    """Module rows, 1 = dark, without the quiet zone."""
    # UTF-8 without ECI: ASCII is unchanged, and readers take other bytes as UTF-8 (segno's
    # default, Shift_JIS or Latin-1 without ECI, is misread by OpenCV).
    code = segno.make(url, error=ERROR_LEVEL, encoding="utf-8", micro=False, boost_error=False)
    return [bytes(row) for row in code.matrix]


def scale_for(size: int) -> int:
    """Pixels per module for a symbol of `size` modules (quiet zone excluded)."""
    return max(1, -(-MIN_WIDTH // (size + 2 * BORDER)))


def encode_png(matrix: Sequence[bytes]) -> bytes:
    """A square matrix of 0/1 modules as a 1-bit grayscale PNG with the quiet zone added."""
    scale = scale_for(len(matrix))
    width = (len(matrix) + 2 * BORDER) * scale
    blank = [bytes(len(matrix))] * BORDER
    # One scanline per module row; the image repeats each one `scale` times.
    lines = [_scanline(row, scale) for row in [*blank, *matrix, *blank]]
    raw = b"".join(line * scale for line in lines)
    idat = b"\x78\x01" + _deflate(lines, scale) + struct.pack(">I", zlib.adler32(raw))
    header = struct.pack(">IIBBBBB", width, width, 1, 0, 0, 0, 0)
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _scanline(row: bytes, scale: int) -> bytes:
    """Filter byte 0, then the row's pixels with the quiet zone, 8 to a byte."""
    quiet = b"1" * (BORDER * scale)  # grayscale: 1 is white, 0 is black
    pixels = row.translate(_AS_BITS).replace(b"1", b"1" * scale).replace(b"0", b"0" * scale)
    bits = quiet + pixels + quiet
    bits += b"0" * (-len(bits) % 8)
    return b"\0" + int(bits, 2).to_bytes(len(bits) // 8, "big")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# Deflate (RFC 1951), one block with dynamic Huffman codes. Bits are built as a '0'/'1' string in
# stream order: Huffman codes most significant bit first, every other field least significant first.
_WINDOW = 32768
_LENGTH_BASE = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83,
                99, 115, 131, 163, 195, 227, 258)  # fmt: skip
_LENGTH_EXTRA = (0,) * 8 + tuple(n for n in range(1, 6) for _ in range(4)) + (0,)
_DIST_BASE = (1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
              1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577)  # fmt: skip
_DIST_EXTRA = (0, 0, *(n for n in range(14) for _ in range(2)))
_CODE_LENGTH_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)
_END_OF_BLOCK = 256

_Token = tuple[int, str, int, str]  # length symbol, its extra bits, distance symbol, its extra bits


def _bits(value: int, width: int) -> str:
    return format(value, f"0{width}b")[::-1] if width else ""


def _code(value: int, base: Sequence[int], extra: Sequence[int]) -> tuple[int, str]:
    i = bisect_right(base, value) - 1
    return i, _bits(value - base[i], extra[i])


@lru_cache(maxsize=1024)
def _copies(distance: int, length: int) -> tuple[_Token, ...]:
    tokens = []
    dist_symbol, dist_extra = _code(distance, _DIST_BASE, _DIST_EXTRA)
    while length:
        step = 258 if length >= 261 else length if length <= 258 else length - 3
        symbol, extra = _code(step, _LENGTH_BASE, _LENGTH_EXTRA)
        tokens.append((257 + symbol, extra, dist_symbol, dist_extra))
        length -= step
    return tuple(tokens)


def _deflate(lines: Sequence[bytes], repeat: int) -> bytes:
    """Deflate `lines` (of equal length, at least 3), each repeated `repeat` times.

    A line is stored once, then copied: from the line above, or from where it last appeared.
    """
    stride = len(lines[0])
    if stride < 3:  # deflate copies 3 bytes or more
        raise ValueError("lines must be at least 3 bytes long")
    ops: list[bytes | list[int]] = []  # literal bytes or [distance, length]
    last_at: dict[bytes, int] = {}
    position = 0

    def copy(distance: int, length: int) -> None:
        last = ops[-1] if ops else None
        if isinstance(last, list) and last[0] == distance:
            last[1] += length
        elif length:
            ops.append([distance, length])

    for line in lines:
        seen = last_at.get(line)
        if seen is not None and position - seen <= _WINDOW:
            copy(position - seen, stride)
        else:
            ops.append(line)
        copy(stride, stride * (repeat - 1))
        position += stride * repeat
        last_at[line] = position - stride

    items = [op if isinstance(op, bytes) else _copies(*op) for op in ops]
    tokens = [t for item in items if isinstance(item, tuple) for t in item]
    lit_freq = Counter(b"".join(item for item in items if isinstance(item, bytes)))
    lit_freq.update(t[0] for t in tokens)
    lit_freq[_END_OF_BLOCK] += 1
    dist_freq = Counter(t[2] for t in tokens)
    lit_lengths = _code_lengths(lit_freq, 286, 15)
    dist_lengths = _code_lengths(dist_freq, 30, 15)
    lit_codes, dist_codes = _canonical(lit_lengths), _canonical(dist_lengths)

    out = [_header(lit_lengths, dist_lengths)]
    for item in items:
        if isinstance(item, bytes):
            out.append("".join(map(lit_codes.__getitem__, item)))
        else:
            out.extend(lit_codes[s] + e + dist_codes[d] + x for s, e, d, x in item)
    out.append(lit_codes[_END_OF_BLOCK])
    bits = "".join(out)
    bits += "0" * (-len(bits) % 8)
    return int(bits[::-1], 2).to_bytes(len(bits) // 8, "little")


def _header(lit_lengths: list[int], dist_lengths: list[int]) -> str:
    n_lit = max(257, _used(lit_lengths))
    n_dist = max(1, _used(dist_lengths))
    runs = _run_lengths(lit_lengths[:n_lit] + dist_lengths[:n_dist])
    cl_lengths = _code_lengths(Counter(symbol for symbol, _ in runs), 19, 7)
    cl_codes = _canonical(cl_lengths)
    n_cl = max(4, _used([cl_lengths[s] for s in _CODE_LENGTH_ORDER]))
    return "".join(
        [
            "1" + _bits(2, 2),  # final block, dynamic Huffman
            _bits(n_lit - 257, 5) + _bits(n_dist - 1, 5) + _bits(n_cl - 4, 4),
            *(_bits(cl_lengths[s], 3) for s in _CODE_LENGTH_ORDER[:n_cl]),
            *(cl_codes[symbol] + extra for symbol, extra in runs),
        ]
    )


def _used(lengths: Sequence[int]) -> int:
    """The count of lengths up to the last nonzero one."""
    n = len(lengths)
    while n and not lengths[n - 1]:
        n -= 1
    return n


def _run_lengths(lengths: list[int]) -> list[tuple[int, str]]:
    """Code lengths in the code-length alphabet: 16 repeats the last, 17 and 18 are zero runs."""
    runs: list[tuple[int, str]] = []
    for value, group in itertools.groupby(lengths):
        n = len(list(group))
        if value == 0:
            while n >= 11:
                step = min(n, 138)
                runs.append((18, _bits(step - 11, 7)))
                n -= step
            if n >= 3:
                runs.append((17, _bits(n - 3, 3)))
                n = 0
        else:
            runs.append((value, ""))
            n -= 1
            while n >= 3:
                step = min(n, 6)
                runs.append((16, _bits(step - 3, 2)))
                n -= step
        runs.extend([(value, "")] * n)
    return runs


def _code_lengths(freq: Counter[int], size: int, limit: int) -> list[int]:
    """Huffman code lengths of at most `limit` bits; ties go by symbol, so it is deterministic."""
    weights = {s: w for s, w in freq.items() if w}
    for s in (0, 1):  # inflate rejects a one-symbol code in some alphabets: give it two
        if len(weights) < 2:
            weights.setdefault(s, 1)
    while True:
        depth = dict.fromkeys(weights, 0)
        heap = [(w, s, [s]) for s, w in weights.items()]
        heapq.heapify(heap)
        order = size  # merged nodes sort after leaves of the same weight, in order of creation
        while len(heap) > 1:
            w1, _, a = heapq.heappop(heap)
            w2, _, b = heapq.heappop(heap)
            for s in itertools.chain(a, b):
                depth[s] += 1
            heapq.heappush(heap, (w1 + w2, order, a + b))
            order += 1
        if max(depth.values()) <= limit:
            lengths = [0] * size
            for s, n in depth.items():
                lengths[s] = n
            return lengths
        weights = {s: (w + 1) // 2 for s, w in weights.items()}  # flatten, retry


def _canonical(lengths: Sequence[int]) -> list[str]:
    codes = [""] * len(lengths)
    code = previous = 0
    for symbol in sorted((s for s, n in enumerate(lengths) if n), key=lengths.__getitem__):
        length = lengths[symbol]
        code <<= length - previous
        codes[symbol] = format(code, f"0{length}b")
        code, previous = code + 1, length
    return codes
