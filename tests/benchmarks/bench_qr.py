"""Time QR rendering: `python tests/benchmarks/bench_qr.py` (not collected by pytest).

Per code: segno's matrix, segno's own PNG writer, this project's PNG writer and, when zxing-cpp is
installed, zxing-cpp's matrix. Per page of 25 links: cold (cache cleared) and warm.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

from emulator import qr

segno = qr.segno  # qr.py stays the project's only import of segno
URLS = [f"https://8here.in/sample-link-{i:02d}-{'x' * (i * 2)}" for i in range(25)]


def median_ms(run: Callable[[], object], repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def per_code(name: str, render: Callable[[str], object]) -> None:
    ms = statistics.median(median_ms(lambda url=url: render(url)) for url in URLS)
    print(f"{name:<28} {ms:7.3f} ms per code")


def segno_png(url: str) -> bytes:
    code = segno.make(url, error=qr.ERROR_LEVEL, encoding="utf-8", micro=False, boost_error=False)
    out = io.BytesIO()
    code.save(out, kind="png", scale=qr.scale_for(code.symbol_size(border=0)[0]), border=qr.BORDER)
    return out.getvalue()


def zxing_matrix(url: str) -> list[bytes]:
    import numpy as np
    import zxingcpp

    code = zxingcpp.create_barcode(url, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image = np.asarray(code.to_image(scale=1, add_quiet_zones=False))
    return [row.tobytes() for row in (image == 0).astype(np.uint8)]


def cold_page(render: Callable[[str], object]) -> Callable[[], None]:
    def run() -> None:
        qr.qr_png.cache_clear()
        qr.qr_png_base64.cache_clear()
        for url in URLS:
            render(url)

    return run


def main() -> None:
    matrices = {url: qr.qr_matrix(url) for url in URLS}
    per_code("segno matrix", qr.qr_matrix)
    per_code("segno matrix + segno PNG", segno_png)
    per_code("PNG writer (qr.encode_png)", lambda url: qr.encode_png(matrices[url]))
    sizes = [len(qr.encode_png(m)) for m in matrices.values()]
    segno_sizes = [len(segno_png(url)) for url in URLS]
    print(f"PNG bytes: ours {min(sizes)}-{max(sizes)}, segno {min(segno_sizes)}-{max(segno_sizes)}")

    print(f"cold page of 25 (segno)      {median_ms(cold_page(qr.qr_png_base64)):7.1f} ms p50")
    warm = median_ms(lambda: [*map(qr.qr_png_base64, URLS)])
    print(f"warm page of 25              {warm:7.3f} ms")
    try:
        import zxingcpp  # noqa: F401
    except ImportError:
        print("zxing-cpp not installed: skipped")
        return
    per_code("zxing-cpp matrix", zxing_matrix)
    same = sum(zxing_matrix(url) == matrices[url] for url in URLS)
    print(f"zxing-cpp matrix == segno matrix for {same}/{len(URLS)} URLs")
    page = cold_page(lambda url: qr.encode_png(zxing_matrix(url)))
    print(f"cold page of 25 (zxing-cpp)  {median_ms(page):7.1f} ms p50")


if __name__ == "__main__":
    main()
