"""The CLI's side of `genimg serve`: find a running server, send it a spec, show its progress, and write the
images it makes where and as the CLI itself would (same names, same metadata: the server writes it)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Callable, Iterator

from genimg.errors import RunFailure, UsageError
from genimg.serve.runtime import ServerAddress

TIMEOUT = 30.0  # seconds for one request (a job's progress streams for as long as it runs)


def find_server(url: str | None, local: bool) -> ServerAddress | None:
    """The server to use: ``--server URL``, else the config's ``server``, else the one this machine runs
    (its runtime file); None with ``--local`` or when there is none."""
    if local:
        return None
    from genimg import config
    from genimg.serve.runtime import running

    url = url or config.get("server")
    if url:
        return ServerAddress(url.rstrip("/"), config.get("server_token") or None)
    return running()


def uploads_of(spec) -> dict[str, str]:
    """The input images ``spec`` names, read and base64-encoded under the names the spec gives them."""
    from genimg.inputs import load_image
    from genimg.serve.jobs import image_fields

    out = {}
    for name in image_fields(spec):
        load_image(Path(name).expanduser())  # a folder, a missing file or no image: the same line as locally
        out[name] = base64.b64encode(Path(name).expanduser().read_bytes()).decode()
    return out


def generate_remote(address: ServerAddress, spec, output, overwrite: bool,
                    progress: Callable | None = None) -> Iterator[tuple[Path, dict]]:
    """Run ``spec`` on the server; yields (the path written here, the image's summary) as each image is ready."""
    import httpx

    headers = {"Authorization": f"Bearer {address.token}"} if address.token else {}
    with httpx.Client(base_url=address.url, headers=headers, timeout=TIMEOUT) as client:
        try:
            answer = client.post("/v1/jobs", json={"spec": spec.to_dict(), "files": uploads_of(spec)})
        except httpx.HTTPError as e:
            raise RunFailure(f"the genimg server at {address.url} does not answer ({e}); start it with "
                             "`genimg serve`, or pass --local") from None
        job = _answer(answer, address)
        paths: list[Path] = []
        try:
            yield from _follow(client, job["id"], spec, output, overwrite, progress, paths)
        except (KeyboardInterrupt, GeneratorExit):
            client.delete(f"/v1/jobs/{job['id']}")  # the server stops it at its next step
            raise


def _answer(response, address: ServerAddress) -> dict:
    if response.status_code < 300:
        return response.json()
    try:
        message = response.json().get("error", response.text)
    except ValueError:
        message = response.text
    if response.status_code == 503:
        raise RunFailure(f"the server at {address.url} is busy: {message}")
    if response.status_code in (400, 401, 413):
        raise UsageError(message)
    raise RunFailure(f"the server at {address.url} failed: {message}")


def _follow(client, job_id: str, spec, output, overwrite: bool, progress, paths: list) -> Iterator[tuple[Path, dict]]:
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: "):])
            kind = event.pop("event")
            if kind == "image_ready":
                yield _fetch(client, job_id, event["index"], spec, output, overwrite, paths)
            elif kind == "failed":
                error = event.get("error", "the job failed")
                state = client.get(f"/v1/jobs/{job_id}").json()
                raise (UsageError if state.get("error_code") == 2 else RunFailure)(error)
            elif kind == "cancelled":
                raise RunFailure("the server cancelled the job")
            elif kind == "done":
                return
            elif progress and kind in ("step", "image", "load", "loaded", "warning", "download"):
                progress(kind, **event)


def _fetch(client, job_id: str, index: int, spec, output, overwrite: bool, paths: list) -> tuple[Path, dict]:
    """Image ``index`` of the job, written to the path the CLI would have given it."""
    from genimg.files import atomic_save
    from genimg.output.naming import default_output, output_paths
    from genimg.spec import GenerationSpec

    summary = client.get(f"/v1/jobs/{job_id}").json()["images"][index]
    if not paths:  # the names of all the run's images at once: they may depend on each other (-SEED added)
        first = GenerationSpec.from_dict(summary["settings"])
        specs = [first.replace(seed=first.seed + i) for i in range(spec.count)]
        paths += output_paths(output if output is not None else default_output(), specs, summary["model"])
    data = client.get(f"/v1/jobs/{job_id}/images/{index}").content
    path = atomic_save(paths[index], lambda tmp: tmp.write_bytes(data), overwrite)
    return path, summary
