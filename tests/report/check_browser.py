"""The page of `kvcali report` in a real browser: Debian's chromium, headless.

On the bundled example (examples/llama: 8 layers, one of them per channel over 4096 channels):
- the page is self-contained (no URL but in-page anchors and a data: icon);
- loaded with --dump-dom: no console message at all (errors, uncaught exceptions), every layer's row
  in the table, and the table in the config's order;
- sorting: `#sort=KEY` makes the page's script click that column's header at load (`#sort=-KEY`
  twice: descending); the dumped DOM's rows must then be in the order the JSON's figures give,
  for a number column both ways and for the name column;
- the page fits a laptop's width (1280 and 1024 px: the document is no wider than the window);
- the screenshot is not blank (the PNG decoded here: many colours, a good share of non-white pixels).
The console check is first shown to catch a page that does log an error.

Usage: check_browser.py   (env KVCALI_EXE, KVCALI_SOURCE_ROOT; chromium on PATH)
"""
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = os.environ["KVCALI_SOURCE_ROOT"]
EXE = os.environ["KVCALI_EXE"]
CHROMIUM = shutil.which("chromium")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL", what)
    return ok


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


def chromium(work, url, *extra, window="1280,1600"):
    """Runs headless chromium on `url`; returns (stdout, console lines)."""
    profile = tempfile.mkdtemp(prefix="profile-", dir=work)
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + profile,
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--window-size=" + window, "--hide-scrollbars",
            *extra, url]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"chromium failed ({p.returncode}):\n{p.stderr[-3000:]}")
    console = [line for line in p.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return p.stdout, console


class Rows(html.parser.HTMLParser):
    """The rows of table#layers (their data-name) and its attributes, from a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.in_layers = False
        self.table_attrs = {}
        self.names = []
        self.heads = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "layers":
            self.in_layers = True
            self.table_attrs = a
        elif self.in_layers and tag == "tr" and "data-name" in a:
            self.names.append(a["data-name"])
        elif self.in_layers and tag == "th" and "data-key" in a:
            self.heads[a["data-key"]] = a

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_layers = False


def rows_of(dom):
    p = Rows()
    p.feed(dom)
    return p


def png_pixels(path):
    """Width, height and the RGB(A) rows of an 8-bit PNG (colour types 2 and 6), decoded here."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), f"PNG depth {depth} colour type {colour}"
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    check(CHROMIUM is not None, "chromium is not installed (apt-get install chromium; scripts/install-deps.sh installs it)")
    if CHROMIUM is None:
        return 1
    work = tempfile.mkdtemp(prefix="kvcali-browser-")
    try:
        return test(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test(work):
    # The console check catches a page that logs an error.
    bad = os.path.join(work, "bad.html")
    with open(bad, "w") as f:
        f.write("<!DOCTYPE html><p>x</p><script>console.error('boom'); notDefined();</script>")
    _, console = chromium(work, "file://" + bad, "--dump-dom")
    check(any("boom" in c for c in console) and any("Uncaught" in c for c in console),
          f"the console check does not see a broken page's errors: {console}")

    # The bundled example's report.
    ex = os.path.join(ROOT, "examples", "llama")
    act = os.path.join(work, "act")
    run([sys.executable, os.path.join(ex, "make_activations.py"), act, "--tokens", "4"])
    config = os.path.join(work, "config.json")
    run([EXE, "generate", "--model", os.path.join(ex, "model.json"), "--cfg", os.path.join(ex, "quant.cfg"), "-o", config, "--quiet"])
    run([EXE, "calibrate", "--config", config, "-a", act, "-o", os.path.join(work, "record.txt"), "--quiet"])
    page = os.path.join(work, "report.html")
    run([EXE, "report", "--config", config, "-a", act, "--record", os.path.join(work, "record.txt"), "-o", page, "--json",
         os.path.join(work, "report.json"), "--quiet"])
    with open(os.path.join(work, "report.json")) as f:
        layers = json.load(f)["layers"]
    names = [l["name"] for l in layers]
    check(len(names) == 8, f"the example has 8 layers, the JSON {len(names)}")
    with open(page) as f:
        text = f.read()

    # Self-contained: no URL other than in-page anchors and the data: icon; no fetches in the script.
    urls = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text) + re.findall(r"url\(([^)]*)\)", text)
    external = [u for u in urls if not (u.startswith("#") or u.startswith("data:"))]
    check(not external, f"the page refers to outside resources: {external[:5]}")
    check("fetch(" not in text and "XMLHttpRequest" not in text and "<iframe" not in text, "the page's script fetches something")

    url = "file://" + page
    dom, console = chromium(work, url, "--dump-dom")
    check(not console, f"console messages on load: {console}")
    rows = rows_of(dom)
    check(rows.names == names, f"rows at load {rows.names} vs the config's layers {names}")
    check(set(rows.heads) >= {"name", "sqnr_db", "clip_fraction", "mse", "cosine", "flags"}, f"table headers {sorted(rows.heads)}")

    def order(key, reverse):
        rank = [(float("inf") if v is None else v) for v in (key(l) for l in layers)]
        idx = sorted(range(len(layers)), key=lambda i: (rank[i], i) if not reverse else (-rank[i], i))
        return [names[i] for i in idx]

    sqnr = lambda l: l["record"]["sqnr_db"]  # noqa: E731
    want = {
        "sqnr_db": order(sqnr, False),
        "-sqnr_db": order(sqnr, True),
        "-count": order(lambda l: l["count"], True),
        "mse": order(lambda l: l["record"]["mse"], False),
        "name": sorted(names),
    }
    check(want["sqnr_db"] != names, "the SQNR order equals the config's order: sorting would go unseen")
    for key, expected in want.items():
        dom, console = chromium(work, url + "#sort=" + key, "--dump-dom")
        check(not console, f"console messages sorting by {key}: {console}")
        rows = rows_of(dom)
        check(rows.names == expected, f"#sort={key}: rows {rows.names}, expected {expected}")
        direction = "descending" if key.startswith("-") else "ascending"
        check(rows.table_attrs.get("data-sorted-by") == key.lstrip("-") + ":" + direction,
              f"#sort={key}: table data-sorted-by {rows.table_attrs.get('data-sorted-by')}")
        check(rows.heads[key.lstrip("-")].get("aria-sort") == direction, f"#sort={key}: header aria-sort")

    # Laptop widths: the document is no wider than the window (an instrumented copy records both).
    probe = os.path.join(work, "probe.html")
    with open(probe, "w") as f:
        f.write(text.replace("</body>", "<script>document.documentElement.setAttribute('data-widths', "
                                        "document.documentElement.scrollWidth + ' ' + window.innerWidth);</script></body>"))
    for width in (1280, 1024):
        dom, console = chromium(work, "file://" + probe, "--dump-dom", window=f"{width},900")
        m = re.search(r'data-widths="(\d+) (\d+)"', dom)
        if check(m is not None, f"width probe missing at {width} px"):
            check(int(m.group(1)) <= int(m.group(2)), f"at {width} px the page is {m.group(1)} px wide (window {m.group(2)})")

    # The screenshot is not blank.
    shot = os.path.join(work, "shot.png")
    chromium(work, url, "--screenshot=" + shot, window="1000,1400")
    check(os.path.getsize(shot) > 10000, f"screenshot of {os.path.getsize(shot)} bytes")
    w, h, bpp, pixels = png_pixels(shot)
    colours, non_white, total = set(), 0, 0
    for y in range(0, h, 4):
        row = pixels[y]
        for x in range(0, w * bpp, 4 * bpp):
            px = row[x:x + 3]
            colours.add(px)
            total += 1
            non_white += px != b"\xff\xff\xff"
    print(f"screenshot {w}x{h}: {len(colours)} colours, {100.0 * non_white / total:.1f}% non-white pixels (sampled)")
    check((w, h) == (1000, 1400), f"screenshot size {w}x{h}")
    check(len(colours) >= 50, f"screenshot has {len(colours)} colours")
    check(0.05 <= non_white / total <= 0.95, f"screenshot is {100.0 * non_white / total:.1f}% non-white")

    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
