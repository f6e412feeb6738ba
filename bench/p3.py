"""P3: a 10 MiB upload through docs (stream, checks, hash, store, scan), with and without its
size declared, against minio's put_object of the same bytes to the same server."""

from __future__ import annotations

from tawasul_devstack.stack import StackConfig

from bench.report import Figure
from bench.runs import MIB, Settings, load_spec, rate_shown, run_load, why


async def p3(config: StackConfig, settings: Settings) -> list[Figure]:
    """The upload as channels that know its size send it (the SDK, the gateway with a
    Content-Length), and without the size (stored in parts), against one put_object run."""
    size = settings.upload_bytes
    what = f"{size / MIB:g} MiB upload through docs (stream, checks, hash, store, scan)"
    figures = [
        Figure("P3", f"{what}, size declared, MiB/s", "≥ 0.7× put_object", unit="MiB/s"),
        Figure(
            "P3 size unknown",
            f"{what}, no size declared (stored in 5 MiB parts), MiB/s",
            "≥ 0.7× put_object",
            unit="MiB/s",
        ),
    ]
    bound = {
        "concurrency": 1,
        "count": settings.uploads,
        "warmup": settings.upload_warmup,
        "seconds": 120.0,
        "size_bytes": size,
    }
    try:
        put = await run_load(load_spec(config, "put_object", **bound))
        uploads = [await run_load(load_spec(config, kind, **bound)) for kind in P3_KINDS]
    except Exception as exc:  # one figure that cannot be measured does not end the run
        for figure in figures:
            figure.fail(why(exc))
        return figures
    for figure, upload in zip(figures, uploads, strict=True):
        figure.detail = {"upload": upload.summary(), "put_object": put.summary()}
        if upload.count == 0 or put.count == 0:
            figure.fail(upload.first_error or put.first_error)
            continue
        mine, theirs = upload.rate * size / MIB, put.rate * size / MIB
        figure.value = round(mine, 1)
        figure.shown = rate_shown(upload, f"{mine:.1f} MiB/s")
        figure.baseline = round(theirs, 1)
        figure.baseline_shown = "minio put_object, same bytes, same MinIO: " + rate_shown(
            put, f"{theirs:.1f} MiB/s"
        )
        figure.ratio = round(mine / theirs, 3)
        figure.judge(figure.ratio >= 0.7)
    return figures


P3_KINDS = ("upload", "upload_unsized")
