#!/usr/bin/env python3
"""Copy screenshots the browser tests took (test-artifacts/<name>.png) into docs/images/.

The tests never write tracked files: they save screenshots under the git-ignored
test-artifacts/. Run the browser tests first, look at the images, then copy the ones you choose:

    nice -n 10 .venv/bin/python -m pytest -q tests/widgets/test_browser.py \
        tests/widgets/test_browser_features.py tests/widgets/test_jupyter.py
    .venv/bin/python scripts/copy_screenshots.py --list          # what would be copied
    .venv/bin/python scripts/copy_screenshots.py                  # every representative one
    .venv/bin/python scripts/copy_screenshots.py features_feature_grid browser_static_export

The names and their docs/images/ file names are ``DOC_IMAGES`` in tests/browser/harness.py.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser.harness import ARTIFACTS, DOC_IMAGES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Copy the chosen screenshots; returns the exit status (1 when one is missing).

    >>> main(["--list"])   # doctest: +SKIP
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "names",
        nargs="*",
        help=f"screenshot names (default: all of {', '.join(sorted(DOC_IMAGES))})",
    )
    ap.add_argument("--list", action="store_true", help="show what would be copied, copy nothing")
    ap.add_argument(
        "--dest", type=pathlib.Path, default=ROOT / "docs" / "images", help="target folder"
    )
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in DOC_IMAGES]
    if unknown:
        ap.error(f"unknown screenshot(s) {unknown}; known: {', '.join(sorted(DOC_IMAGES))}")
    missing = 0
    for name in args.names or sorted(DOC_IMAGES):
        src = ARTIFACTS / f"{name}.png"
        dst = args.dest / DOC_IMAGES[name]
        if not src.is_file():
            print(f"missing  {src.relative_to(ROOT)} (run the browser tests first)")
            missing += 1
            continue
        print(
            f"{'would copy' if args.list else 'copied'}  {src.relative_to(ROOT)} -> "
            f"{dst.relative_to(ROOT) if dst.is_relative_to(ROOT) else dst}"
        )
        if not args.list:
            args.dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
