"""App start-up time: first launch (builds the demo library) against a later launch (reuses it).

Run:  python bench/app_startup.py
Starts ``python app.py`` on a fresh data folder, measures seconds until the page answers and
until the demo library is ready (its marker file written, which is when the page's banner turns
ready), stops it, starts it again on the same folder and measures the same.  Prints both and
their ratio; writes bench/results/app_startup.json.  Targets (issue #4): first launch <= 120 s,
later launches <= 15 s, on a 2-core CPU.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(data_dir: Path, timeout: float = 600.0) -> dict[str, float]:
    """Seconds from process start to HTTP 200 and to the demo library being ready."""
    port = _port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--data-dir", str(data_dir)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = data_dir / "demo" / "demo.json"
    http = ready = None
    try:
        while time.perf_counter() - t0 < timeout and (http is None or ready is None):
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}")
            if http is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                        if r.status == 200:
                            http = time.perf_counter() - t0
                except OSError:
                    pass
            if ready is None and marker.is_file() and http is not None:
                ready = time.perf_counter() - t0
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(30)
    if http is None or ready is None:
        raise RuntimeError(f"app not ready within {timeout} s")
    return {"page_answers_s": round(http, 2), "demo_ready_s": round(ready, 2)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "home"
        first = launch(data)
        later = launch(data)
    result = {"first_launch": first, "later_launch": later,
              "later_over_first": round(later["demo_ready_s"] / first["demo_ready_s"], 3),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "targets": {"first_launch_ready_s": 120, "later_launch_ready_s": 15}}
    out = ROOT / "bench" / "results" / "app_startup.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"first launch: page answers {first['page_answers_s']} s, demo ready {first['demo_ready_s']} s (target 120 s)")
    print(f"later launch: page answers {later['page_answers_s']} s, demo ready {later['demo_ready_s']} s (target 15 s)")
    print(f"later / first: {result['later_over_first']}")


if __name__ == "__main__":
    main()
