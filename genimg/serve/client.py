"""The CLI's side of `genimg serve`: find a running server, send it a spec, show its progress, and write the
images it makes where and as the CLI itself would (same names, same metadata: the server writes it)."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

from genimg.errors import RunFailure, UsageError
from genimg.serve.runtime import ServerAddress

TIMEOUT = 30.0  # seconds for one request (a job's progress streams for as long as it runs)


def find_server(url: str | None, local: bool, progress: Callable | None = None) -> ServerAddress | None:
    """The server to use: ``--server URL``, else the config's ``server``, else the one this machine runs
    (its runtime file); None with ``--local`` or when there is none. ``auto`` (flag or config): the one this
    machine runs, started in the background when none is."""
    if local:
        return None
    from genimg import config
    from genimg.serve.runtime import running

    url = url or config.get("server")
    if url == "auto":
        from genimg.serve.background import started

        return started(config.get("server_idle_exit"), progress)
    if url:
        return ServerAddress(url.rstrip("/"), config.get("server_token") or None)
    return running()


def server_for(url: str | None, local: bool, paths=(), progress: Callable | None = None) -> ServerAddress | None:
    """The server to run on (:func:`find_server`), or None to run in this process — also when the work names
    files on this machine (``paths``: (what, value) pairs), since a server opens no path a client names;
    asked for by ``--server URL`` (``url``), that is an error."""
    if not paths:
        return find_server(url, local, progress)
    if url and url != "auto" and not local:
        what, value = paths[0]
        raise UsageError(f"{what} {value!r} is a path on this machine, which a server does not open; name it by "
                         "alias or as a name in the server's folders, or leave out --server")
    return None


def uploads_of(spec) -> dict[str, str]:
    """The input images ``spec`` names, read and base64-encoded under the names the spec gives them."""
    from genimg.inputs import load_image
    from genimg.serve.safety import image_fields

    out = {}
    for name in image_fields(spec):
        load_image(Path(name).expanduser())  # a folder, a missing file or no image: the same line as locally
        out[name] = base64.b64encode(Path(name).expanduser().read_bytes()).decode()
    return out


def remote_plan(address: ServerAddress, spec) -> dict:
    """``spec`` planned by the server, nothing run: its settings as the server resolves them (``settings``),
    each image's seed (``seeds``) and the model's name (``model``): what names the files."""
    import httpx

    with _client(address) as client:
        try:
            answer = client.post("/v1/plan", json={"spec": spec.to_dict(), "files": uploads_of(spec)})
        except httpx.HTTPError as e:
            raise _unreachable(address, e) from None
        return _answer(answer, address)


def remote_images(address: ServerAddress, spec, progress: Callable | None = None,
                  fallback: bool = False) -> Iterator[tuple[bytes, dict]]:
    """Run ``spec`` on the server; yields each PNG (its bytes, with the metadata the server wrote) and its
    summary as it is ready. Ctrl-C or leaving the loop early cancels the job on the server. ``fallback``:
    out of GPU memory, the server retries once on the next smaller preset."""
    request = {"spec": spec.to_dict(), "files": uploads_of(spec), "fallback": fallback}
    yield from _job(address, "/v1/jobs", request, progress)


def upscale_remote(address: ServerAddress, inputs, settings, output=None, overwrite: bool = False,
                   progress: Callable | None = None):
    """``upscale_files`` run by the server: every input and output checked here first, each image sent,
    its PNG (the source's settings kept, the upscale recorded, by the server) written where the CLI would."""
    from genimg.output.sink import ImageSink
    from genimg.upscale.run import Upscaled, plan_upscale

    _, _, jobs = plan_upscale(inputs, settings, output, overwrite)
    todo = [job for job in jobs if not job.skip]
    for job in jobs:
        if job.skip and progress:
            progress("skip", path=job.output)
    wire = {k: v for k, v in asdict(settings).items() if k != "allow_pickle"}

    def passed_on(event, **info):  # the server's per-image count is of its one image: this side counts
        if progress and event != "image":
            progress(event, **info)

    for n, job in enumerate(todo):
        request = {"name": job.source.name, "image": base64.b64encode(job.source.read_bytes()).decode(),
                   "settings": wire}
        for data, summary in _job(address, "/v1/upscale", request, passed_on):
            path = ImageSink(overwrite).received(data, job.output)
            if progress:
                progress("image", done=n + 1, total=len(todo))
            yield Upscaled(job.source, path, tuple(summary["size"]), summary["seconds"], summary["upscaler"])


def _job(address: ServerAddress, route: str, request: dict, progress) -> Iterator[tuple[bytes, dict]]:
    import httpx

    with _client(address) as client:
        try:
            answer = client.post(route, json=request)
        except httpx.HTTPError as e:
            raise _unreachable(address, e) from None
        job = _answer(answer, address)
        try:
            yield from _follow(client, job["id"], progress)
        except (KeyboardInterrupt, GeneratorExit):
            client.delete(f"/v1/jobs/{job['id']}")  # the server stops it at its next step
            raise
        except httpx.HTTPError as e:  # the server went away mid-job (stopped, killed, the network)
            raise RunFailure(f"the genimg server at {address.url} stopped answering ({type(e).__name__}); start it "
                             "again with `genimg serve`, or pass --local") from None


def _client(address: ServerAddress):
    import httpx

    headers = {"Authorization": f"Bearer {address.token}"} if address.token else {}
    return httpx.Client(base_url=address.url, headers=headers, timeout=TIMEOUT)


def _unreachable(address: ServerAddress, error) -> RunFailure:
    return RunFailure(f"the genimg server at {address.url} does not answer ({error}); start it with `genimg serve`, "
                      "or pass --local")


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


def _follow(client, job_id: str, progress) -> Iterator[tuple[bytes, dict]]:
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: "):])
            kind = event.pop("event")
            if kind == "image_ready":
                summary = client.get(f"/v1/jobs/{job_id}").json()["images"][event["index"]]
                yield client.get(f"/v1/jobs/{job_id}/images/{event['index']}").content, summary
            elif kind == "failed":
                error = event.get("error", "the job failed")
                state = client.get(f"/v1/jobs/{job_id}").json()
                raise (UsageError if state.get("error_code") == 2 else RunFailure)(error)
            elif kind == "cancelled":
                raise RunFailure("the server cancelled the job (it is stopping, or it was cancelled there); start the "
                                 "server again, or pass --local")
            elif kind == "done":
                return
            elif progress and kind in ("step", "tile", "image", "load", "loaded", "warning", "download"):
                event.pop("eta", None)
                progress(kind, **event)
