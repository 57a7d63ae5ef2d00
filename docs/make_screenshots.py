"""The pictures in the README, made from what vecmon really generates and serves (``make screenshots``).

- ``docs/images/dashboard-<uid>.png``: the layout of each dashboard ``vecmon generate`` writes for
  ``config/example.yaml`` (panel titles and types on Grafana's grid, see dashboards/preview.py);
- ``docs/images/console.png``: the status console of a running ``vecmon demo`` (small corpus),
  taken once the first recall probe has reported.

Pictures are taken by Debian's headless Chromium (``apt-get install chromium``), with the network
features that would reach out switched off.

    python docs/make_screenshots.py [--only dashboards|console] [--out docs/images]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboards.preview import layout_svg  # noqa: E402
from monitor.embedded import free_port  # noqa: E402

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--disable-quic")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("make_screenshots: Chromium not found (apt-get install chromium)")


def screenshot(url: str, out: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               f"--window-size={width},{height}", f"--screenshot={out}", url],
                              capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"make_screenshots: Chromium failed on {url}: {done.stderr[-500:]}")


def dashboards(out: Path) -> list[Path]:
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "generated"
        subprocess.run([sys.executable, "-m", "monitor", "generate", "-c", str(ROOT / "config" / "example.yaml"),
                        "-o", str(generated)], cwd=ROOT, check=True, capture_output=True, timeout=120)
        for path in sorted((generated / "grafana").glob("*.json")):
            board = json.loads(path.read_text())
            svg = layout_svg(board)
            page = Path(tmp) / f"{path.stem}.html"
            page.write_text(f"<!doctype html><html><body style='margin:0'>{svg}</body></html>")
            width = int(svg.split('width="', 1)[1].split('"', 1)[0])
            height = int(svg.split('height="', 1)[1].split('"', 1)[0])
            target = out / f"dashboard-{board['uid']}.png"
            screenshot(page.as_uri(), target, width, height)
            made.append(target)
    return made


def console(out: Path) -> Path:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--data-dir", str(Path(tmp) / "demo"),
                                 "--rows", "5000", "--dim", "64", "--listen", f"127.0.0.1:{port}"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                try:
                    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                    if "vecmon_recall_mean_ratio{" in text:
                        break
                except OSError:
                    pass
                time.sleep(1)
            else:
                raise SystemExit("make_screenshots: the demo did not report recall within 240 s")
            target = out / "console.png"
            screenshot(f"http://127.0.0.1:{port}/", target, 1280, 1600)
            return target
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["dashboards", "console"])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    if args.only in (None, "dashboards"):
        made += dashboards(out)
    if args.only in (None, "console"):
        made.append(console(out))
    for path in made:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
