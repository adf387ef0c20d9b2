"""The container image: how long scripts/build-image takes (with its caches as they are) and
how big the image and each of its layers are.

    python bench/image.py [--tag selfheal-receiver:test]

Here the base is the Debian bookworm scripts/build-image makes with debootstrap (where no
registry is reachable); with the pinned python:3.11-slim-bookworm base the base layer is
that image's instead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", default="selfheal-receiver:test")
    args = parser.parse_args()
    started = time.monotonic()
    subprocess.run([str(ROOT / "scripts" / "build-image"), "--tag", args.tag],
                   check=True, capture_output=True)  # fmt: skip
    took = time.monotonic() - started
    (image,) = json.loads(
        subprocess.run(["podman", "image", "inspect", args.tag], check=True,
                       capture_output=True, text=True).stdout
    )  # fmt: skip
    history = subprocess.run(
        ["podman", "history", "--format", "{{.Size}}\t{{.CreatedBy}}", args.tag],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    print(f"scripts/build-image: {took:.1f} s (caches as they were)")
    print(f"{args.tag}: {image['Size'] / 1e6:.0f} MB, {len(image['RootFS']['Layers'])} layers")
    for line in history.splitlines():
        size, created = line.split("\t", 1)
        if size != "0 B":
            print(f"  {size:>9}  {created.replace('/bin/sh -c ', '')[:90]}")


if __name__ == "__main__":
    main()
