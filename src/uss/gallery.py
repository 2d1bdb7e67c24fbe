"""A static gallery of a prediction folder, to look through what the clusters are image by image.

``python -m uss.gallery --data D --split S --pred P [--match M] --out G`` writes G/index.html (opens from disk, no
server): a legend of the predicted ids and their colours, and per id a strip of the images it covers most ("what is
cluster 7?"); then pages of `--per-page` images, each shown as the image, its prediction overlay and, where the
split has ground truth, the ground-truth overlay and the image's IoU (mean over the classes present in either,
after the match when one is given). Thumbnails go to G/thumbs/, named by image index; every file is written
atomically. Predicted ids are shown as written (cluster ids); the match is used for the IoU only.
"""
import argparse
import html
import os
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from uss import options
from uss.atomic import atomic_write_bytes, atomic_write_text
from uss.data import layout
from uss.data.image_io import ImageFileError
from uss.data.label_png import IGNORE, read_label_png
from uss.data.split import ImageNetSSplit
from uss.evaluation.matching import apply_match, load_match
from uss.visualize import overlay, palette

STYLE = """body{font-family:sans-serif;margin:16px;background:#fafafa}
figure{display:inline-block;margin:4px;vertical-align:top;background:#fff;padding:4px;border:1px solid #ddd}
figure img{display:block;margin-bottom:2px}figcaption{font-size:12px;max-width:480px;word-break:break-all}
.swatch{display:inline-block;width:14px;height:14px;border:1px solid #444;vertical-align:middle}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;font-size:13px}
.strip img{margin:1px}nav a{margin-right:6px}"""


def _fit(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """The image scaled to fit a size x size box (aspect kept)."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, shape, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _write_image(path: str, rgb: np.ndarray) -> None:
    """An RGB image as PNG or JPEG (by the name's extension), atomically."""
    ok, data = cv2.imencode(os.path.splitext(path)[1], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    atomic_write_bytes(path, data.tobytes())


def image_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean IoU over the ids (background included) present in the ground truth or the prediction; ignore skipped."""
    valid = gt != IGNORE
    gt, pred = gt[valid], pred[valid]
    ids = np.union1d(np.unique(gt), np.unique(pred))
    if not len(ids):
        return float("nan")
    return float(np.mean([((gt == i) & (pred == i)).sum() / ((gt == i) | (pred == i)).sum() for i in ids]))


def _page_name(page: int) -> str:
    return "index.html" if page == 0 else f"page-{page + 1:04d}.html"


def _document(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _nav(page: int, pages: int) -> str:
    links = [f"<a href='{_page_name(p)}'>{'<b>%d</b>' % (p + 1) if p == page else p + 1}</a>" for p in range(pages)]
    return "<nav>pages: " + "".join(links) + "</nav>"


def build_gallery(split: ImageNetSSplit, pred_dir: str, out: str, match: Optional[Dict[int, int]] = None,
                  per_page: int = 60, thumb: int = 160, strip: int = 8, progress: bool = True) -> List[str]:
    """Write the gallery (module docstring) and return the HTML files written, index.html first."""
    if per_page < 1 or thumb < 8 or strip < 1:
        raise ValueError("per_page and strip must be >= 1 and thumb >= 8")
    thumbs = os.path.join(out, "thumbs")
    os.makedirs(thumbs, exist_ok=True)
    entries: List[dict] = []
    coverage: Dict[int, List[Tuple[float, int]]] = {}
    top_id = 0
    skipped: List[str] = []  # unreadable images (test.py skipped them too) and images without a prediction
    for index, name in enumerate(tqdm(split.names, desc=f"gallery ({split.split})", unit="img", disable=not progress)):
        pred_path = os.path.join(pred_dir, layout.label_name(name))
        if not os.path.isfile(pred_path):
            skipped.append(f"{name}: no prediction ({pred_path})")
            continue
        try:
            item = split.load(index)
        except ImageFileError as error:
            skipped.append(str(error))
            continue
        pred = read_label_png(pred_path)
        if pred.shape != item.image.shape[:2]:
            raise ValueError(f"{os.path.join(pred_dir, layout.label_name(name))}: prediction {pred.shape} and image "
                             f"{item.image.shape[:2]} differ in size")
        stem = f"{index:06d}"
        _write_image(os.path.join(thumbs, stem + ".jpg"), _fit(item.image, thumb))
        _write_image(os.path.join(thumbs, stem + "_pred.png"), _fit(overlay(item.image, pred, 0.55), thumb))
        entry = {"name": name, "stem": stem, "ids": [int(i) for i in np.unique(pred) if i not in (0, IGNORE)]}
        if split.has_segmentation and os.path.isfile(split.label_path(name)):
            gt = split.load_label(index)
            _write_image(os.path.join(thumbs, stem + "_gt.png"), _fit(overlay(item.image, gt, 0.55), thumb))
            entry["iou"] = image_iou(gt, apply_match(pred, match) if match else pred)
        for cluster in entry["ids"]:
            coverage.setdefault(cluster, []).append((float((pred == cluster).mean()), index))
            top_id = max(top_id, cluster)
        entries.append(entry)
    colors = palette(top_id + 1)
    pages = max(1, -(-len(entries) // per_page))
    written = []
    for page in range(pages):
        figures = []
        for entry in entries[page * per_page:(page + 1) * per_page]:
            stem = entry["stem"]
            images = f"<img src='thumbs/{stem}.jpg' alt='image'><img src='thumbs/{stem}_pred.png' alt='prediction'>"
            caption = f"{html.escape(entry['name'])}<br>ids: {', '.join(map(str, entry['ids'])) or 'background only'}"
            if "iou" in entry:
                images += f"<img src='thumbs/{stem}_gt.png' alt='ground truth'>"
                caption += f"; IoU {100 * entry['iou']:.1f}" if np.isfinite(entry["iou"]) else ""
            figures.append(f"<figure id='i{stem}'><div style='display:flex;gap:2px'>{images}</div>"
                           f"<figcaption>{caption}</figcaption></figure>")
        head = f"<h1>{html.escape(split.split)}: {len(entries)} images, predictions from {html.escape(pred_dir)}</h1>"
        if skipped:
            head += (f"<p>{len(skipped)} image(s) not shown: " + "; ".join(html.escape(m) for m in skipped[:20])
                     + (" ..." if len(skipped) > 20 else "") + "</p>")
        body = head + _nav(page, pages)
        if page == 0:
            body += _overview(entries, coverage, colors, strip, per_page, match is not None)
        body += "<h2>images (image, prediction" + (", ground truth" if any("iou" in e for e in entries) else "") \
                + ")</h2>" + "\n".join(figures) + _nav(page, pages)
        path = os.path.join(out, _page_name(page))
        atomic_write_text(path, _document(f"gallery: {split.split} ({page + 1}/{pages})", body))
        written.append(path)
    return written


def _overview(entries: Sequence[dict], coverage: Dict[int, List[Tuple[float, int]]], colors: np.ndarray,
              strip: int, per_page: int, matched: bool) -> str:
    """The legend and, per predicted id, the images it covers most."""
    rows = []
    for cluster in sorted(coverage):
        shares = coverage[cluster]
        best = sorted(shares, reverse=True)[:strip]
        swatch = "#%02x%02x%02x" % tuple(int(c) for c in colors[cluster])
        thumbs = "".join(f"<a href='{_page_name(i // per_page)}#i{entries[i]['stem']}'>"
                         f"<img src='thumbs/{entries[i]['stem']}_pred.png' height='64' alt='{cluster}'></a>"
                         for _, i in best)
        rows.append(f"<tr><td><span class='swatch' style='background:{swatch}'></span> {cluster}</td>"
                    f"<td>{len(shares)}</td><td>{100 * np.mean([s for s, _ in shares]):.1f}</td>"
                    f"<td class='strip'>{thumbs}</td></tr>")
    ious = [e["iou"] for e in entries if np.isfinite(e.get("iou", np.nan))]
    summary = f"<p>mean per-image IoU {100 * np.mean(ious):.1f} " \
              f"({'after the match' if matched else 'ids as predicted'})</p>" if ious else ""
    return (summary + "<h2>predicted ids: images holding each, its mean share of them, and the images it covers "
            "most</h2><table><tr><th>id</th><th>images</th><th>mean share %</th><th>most covered</th></tr>"
            + "".join(rows) + "</table>")


# Appended to a copy of a page: once everything has loaded, list the images the browser could not decode.
_PROBE = """<script>window.addEventListener('load', () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
  const out = document.createElement('pre'); out.id = 'uss-probe';
  out.textContent = JSON.stringify({images: document.images.length, broken: broken,
                                    text: document.body.innerText.length});
  document.body.appendChild(out);
});</script>"""


def check_in_browser(page: str, browser: Optional[str] = None, timeout: int = 120) -> dict:
    """Load a gallery page in headless Chromium; returns {"images": n, "broken": [src...], "text": characters}."""
    import json
    import re
    import shutil
    import subprocess
    import tempfile

    browser = browser or shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        raise FileNotFoundError("no headless Chromium found (Debian: apt-get install chromium)")
    with open(page) as handle:
        text = handle.read()
    folder = os.path.dirname(os.path.abspath(page))
    with tempfile.NamedTemporaryFile("w", suffix=".html", dir=folder, delete=False) as probe:
        probe.write(text.replace("</body>", _PROBE + "</body>"))
    # A fresh profile, and none of Chromium's own network traffic: on a machine without internet it would be
    # refused (or time out) at every start.
    quiet = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
    try:
        with tempfile.TemporaryDirectory() as profile:
            done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", *quiet,
                                   f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
                                   "file://" + probe.name], capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(probe.name)
    found = re.search(r"<pre id=\"uss-probe\">(.*?)</pre>", done.stdout, flags=re.S)
    if not found:
        raise RuntimeError(f"{page}: the browser did not finish loading the page (exit {done.returncode})")
    return json.loads(html.unescape(found.group(1)))


def main(argv: Optional[List[str]] = None) -> None:
    """Command line: python -m uss.gallery --data D --split S --pred P [--match M] --out G."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[options.dataset("validation")])
    parser.add_argument("--pred", required=True, help="prediction folder (label PNGs as the stages write them)")
    parser.add_argument("--match", default=None, help="match.json (predicted id -> class id) for the IoU")
    parser.add_argument("--out", required=True, help="gallery folder (index.html, page-*.html, thumbs/)")
    parser.add_argument("--per-page", type=int, default=60)
    parser.add_argument("--thumb", type=int, default=160, help="thumbnail size in pixels")
    parser.add_argument("--check", action="store_true",
                        help="then load every page in headless Chromium: no broken image, not blank")
    args = parser.parse_args(argv)
    pages = build_gallery(ImageNetSSplit(args.data, args.split), args.pred, args.out,
                          load_match(args.match) if args.match else None, args.per_page, args.thumb)
    print(f"gallery: {pages[0]} ({len(pages)} page(s))")
    for page in pages if args.check else []:
        state = check_in_browser(page)
        if state["broken"] or not state["images"] or state["text"] < 100:
            raise SystemExit(f"error: {page}: {len(state['broken'])} broken of {state['images']} images, "
                             f"{state['text']} characters of text: {state['broken'][:3]}")
        print(f"checked in Chromium: {page}: {state['images']} images, none broken")


if __name__ == "__main__":
    from uss.errors import run_cli

    run_cli(main)
