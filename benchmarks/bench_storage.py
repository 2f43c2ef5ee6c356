"""Benchmark: the first view of a frame in object storage, against fetching its bytes alone.

Usage::

    .venv/bin/python benchmarks/bench_storage.py [--repeat K]

A real S3-compatible server (moto's, on a free loopback port) holds the MIQA sample
frames (IXI002 DTI, gzipped NIfTI). ``K`` rounds, alternating, each on a new object
(uploaded afresh under a new key, so neither side finds anything cached), medians:

- the baseline: the object's bytes fetched with s3fs (``cat_file``), nothing else;
- the first view: the review's path, :meth:`miqa_nb.volumes.VolumeCache.get` of the
  ``s3://`` location with empty caches (the HEAD, the download into the object cache's
  folder, the decoding), and separately the same plus the three planes rendered (what
  a reviewer waits for).

The issue's target: the first view (fetch and decode) within 1.5x the baseline. The
figures are printed beside it with PASS or MISS; nothing is asserted.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

SAMPLES = Path(os.environ.get("MIQA_NB_SAMPLES", "/work/shared/data/miqa-samples"))
DEMO = "samples/Demo Project/IXI002/0828-DTI/IXI002-Guys-0828-DTI-0{}.nii.gz"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    folder = tempfile.mkdtemp(prefix="bench-storage-")
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        MIQA_NB_OBJECT_CACHE=str(Path(folder) / "objects"),
    )
    from miqa_nb.volumes import LoadLimits, VolumeCache, objects, render_planes

    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="lab")
        fs = objects.default_objects().filesystem
        files = [SAMPLES / DEMO.format(n) for n in range(5)]
        size = statistics.mean(f.stat().st_size for f in files)
        fetch, view, shown = [], [], []
        cache = VolumeCache(256 << 20, limits=LoadLimits(data_roots=("s3://lab/mri",)))
        for run in range(args.repeat + 1):  # the first round warms up the clients
            keys = [f"mri/r{run}-{side}.nii.gz" for side in ("a", "b", "c")]
            for key in keys:
                client.upload_file(str(files[run % len(files)]), "lab", key)
            t0 = time.perf_counter()
            fs.cat_file(f"lab/{keys[0]}")
            t1 = time.perf_counter()
            cache.get(f"s3://lab/{keys[1]}")
            t2 = time.perf_counter()
            render_planes(cache.get(f"s3://lab/{keys[2]}"))
            t3 = time.perf_counter()
            if run:
                fetch.append(t1 - t0)
                view.append(t2 - t1)
                shown.append(t3 - t2)
        base, first, drawn = (statistics.median(x) * 1000 for x in (fetch, view, shown))
        ratio = first / base
        print(
            f"frames: IXI002 DTI, gzipped NIfTI, {size / 1e6:.2f} MB on average; {args.repeat} runs"
        )
        print(f"fetch the bytes alone (s3fs cat_file): {base:8.1f} ms median")
        print(f"first view, fetch + decode:            {first:8.1f} ms median")
        print(f"first view, fetch + decode + 3 planes: {drawn:8.1f} ms median")
        verdict = "PASS" if ratio <= 1.5 else "MISS"
        print(f"first view / fetch alone: {ratio:.2f}x (target <= 1.5x) {verdict}")
        print(f"with the planes drawn:    {drawn / base:.2f}x (for information)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
