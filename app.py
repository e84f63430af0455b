"""SeedPrints web app: ``python app.py`` serves the audit UI on its embedded demo library.

Run ``python app.py --help`` for host, port, public mode and data folder.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the app."""
    ap = argparse.ArgumentParser(
        prog="app.py",
        description="SeedPrints web app: audit which training seed a language model comes from.",
        epilog="Data (demo library, your library, fingerprint cache) lives in --data-dir, else $SEEDPRINTS_HOME, "
               "else /data/seedprints on a Hugging Face Space with storage, else ~/.cache/seedprints. "
               "On a Space (SPACE_ID set) the app always runs in public mode.")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                    help="interface to listen on (default 127.0.0.1; 0.0.0.0 to serve the network)")
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                    help="port (default 7860)")
    ap.add_argument("--public", action="store_true",
                    help="public mode: no local paths or server file browsing, upload size limit, "
                         "trust_remote_code impossible, uploads deleted after each audit")
    ap.add_argument("--data-dir", help="folder for all SeedPrints data (sets SEEDPRINTS_HOME)")
    ap.add_argument("--max-upload-mb", type=float, default=2048.0,
                    help="largest accepted upload in MB (default 2048)")
    ap.add_argument("--device", default="auto", help="auto (GPU when present, else CPU), cpu, cuda, cuda:N, mps")
    ap.add_argument("--max-memory", metavar="SIZE", default=os.environ.get("SEEDPRINTS_MAX_MEMORY"),
                    help="memory budget for one extraction, e.g. 4GB (default: 60%% of available RAM, or of free GPU "
                         "memory; env SEEDPRINTS_MAX_MEMORY); larger models run one layer at a time")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Parse options, build the app and serve it until interrupted."""
    args = parse_args(argv)
    if args.data_dir:
        os.environ["SEEDPRINTS_HOME"] = os.path.abspath(os.path.expanduser(args.data_dir))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.max_upload_mb <= 0:
        sys.exit("app.py: --max-upload-mb must be positive")
    if args.max_memory is not None:
        from seedprints.memory import parse_size
        from seedprints.errors import SeedPrintsError

        try:
            parse_size(args.max_memory)
        except SeedPrintsError as exc:
            sys.exit(f"app.py: {exc}")

    from ui.app import build_app
    from ui.context import AppConfig, is_space
    from ui.theme import css, theme

    cfg = AppConfig(public=args.public or is_space(), max_upload_bytes=int(args.max_upload_mb * 2**20),
                    device=args.device, max_memory=args.max_memory)
    blocks = build_app(cfg)
    print(f"SeedPrints: http://{args.host}:{args.port}  (public mode: {cfg.public}, "
          f"data: {os.environ.get('SEEDPRINTS_HOME') or 'default'})", flush=True)
    # no allowed_paths: downloads lie in Gradio's own cache under unguessable folders (ui.context.download_dir)
    blocks.launch(server_name=args.host, server_port=args.port, theme=theme(), css=css(),
                  max_file_size=cfg.max_upload_bytes, show_error=False,
                  footer_links=["api", "gradio"], quiet=True)


if __name__ == "__main__":
    main()
