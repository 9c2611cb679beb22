#!/usr/bin/env python
"""Publish every finished run of a study folder (the VAE grid and the DDPM) and gather them in a collection.

    python scripts/publish_study.py --study_dir studies/vae-grid runs/ddpm-default --namespace you
    python scripts/publish_study.py --study_dir release --namespace you        # the seven released models

Repos are named `<namespace>/mnist-genlab-vae-{arch}-z{latent}-beta{β}` (β written 1e-3, 1, 20),
`mnist-genlab-ddpm` and `mnist-genlab-digit-classifier` (`hub_models.hub.naming.release_repo_ids`, which the
Space's model list uses too). Idempotent: unchanged runs create no commit, repos already in the collection are not
added twice; a re-push deletes the files a run no longer has (evaluation.json included).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python scripts/publish_study.py` from a checkout

from hub_models.hub import DEFAULT_COLLECTION_TITLE, publish_study, run_publish_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--study_dir",
        required=True,
        type=Path,
        nargs="+",
        help="Folder(s) holding the run folders, e.g. studies/vae-grid runs/ddpm-default, or release.",
    )
    parser.add_argument("--namespace", required=True, help="User or organisation that owns the repos.")
    parser.add_argument("--collection_title", default=DEFAULT_COLLECTION_TITLE, help="Title of the collection.")
    parser.add_argument("--private", action="store_true", help="Create new repos and the collection as private.")
    parser.add_argument("--token", default=None, help="Hub token; default HF_TOKEN or `hf auth login` (preferred).")
    parser.add_argument("--max_retries", type=int, default=5, help="Retries per Hub call on network errors/5xx.")
    parser.add_argument("--source_url", default=None,
                        help="Where the project's source is published (a git URL), for the cards' `pip install` "
                             "line; default: the installed package's homepage, else no install line.")
    return parser.parse_args(argv)


def show(result: dict) -> None:
    for repo_id, url in result["repos"].items():
        print(f"{repo_id}: {url}")
    print(f"collection: {result['collection']}")


def main(args: argparse.Namespace) -> int:
    return run_publish_cli(
        lambda: publish_study(args.study_dir, args.namespace, collection_title=args.collection_title,
                              token=args.token, private=args.private, max_retries=args.max_retries,
                              source_url=args.source_url),
        show,
    )

if __name__ == "__main__":
    sys.exit(main(parse_args()))
