"""Start a small mesh (aggregator, two agents, ``perfmesh web``) and save PNG screenshots of the
fleet page and one host page, plus a report and a ``perfmesh top`` capture (when tmux is there).

Run by hand:  python scripts/screenshot_web.py [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import start_browser  # noqa: E402
from tests.conftest import Mesh, free_base_port  # noqa: E402


def wait_http(url: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="screenshots", help="directory for the PNGs (default ./screenshots)")
    ap.add_argument("--warmup", type=float, default=12.0, help="seconds of data before the screenshots")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mesh = Mesh(Path(tempfile.mkdtemp(prefix="perfmesh-shot-")))
    port = free_base_port(1)
    try:
        mesh.aggregator()
        mesh.agent("web01", interval="0.5")
        mesh.agent("db01", interval="0.5")
        mesh.wait_hosts("web01", "db01")
        mesh.spawn("web", "--connect", mesh.connect, "--listen", f"127.0.0.1:{port}", "--allow-commands", log="web")
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/")
        mesh.cli("command", "web01", "gc_collect")
        time.sleep(args.warmup)
        driver = start_browser(1440, 1000)
        try:
            driver.get(base + "/")
            time.sleep(3)
            driver.save_screenshot(str(out / "web-fleet.png"))
            driver.get(base + "/host/web01")
            time.sleep(4)
            driver.set_window_size(1440, 2000)
            time.sleep(1)
            driver.save_screenshot(str(out / "web-host.png"))
            report = out / "report-web01.html"
            mesh.cli("report", "--host", "web01", "--since", "600", "--out", str(report.resolve()))
            driver.get(report.resolve().as_uri())
            time.sleep(1)
            driver.set_window_size(1200, 3000)
            driver.save_screenshot(str(out / "report.png"))
        finally:
            driver.quit()
        if shutil.which("tmux"):
            session = f"perfmesh-shot-{port}"
            subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                            f"cd {ROOT} && {sys.executable} -m workers top --connect {mesh.connect}"], check=True)
            time.sleep(4)
            text = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
            (out / "top.txt").write_text(text)
            subprocess.run(["tmux", "kill-session", "-t", session])
        print(f"screenshots in {out.resolve()}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    finally:
        mesh.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
