"""The Hugging Face hub from genimg's side: is it reachable, and if not, work from the cache quietly.

huggingface_hub retries an unreachable endpoint for many seconds and logs each retry; one short
connection attempt tells the same thing, once, before anything is fetched.
"""

from __future__ import annotations

import time
from urllib.parse import urlparse

from genimg.errors import RunFailure, UsageError


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


PROBE_TTL = 30.0  # seconds a probe's answer is kept: a long-running server notices the network come back
_PROBES: dict[str, tuple[float, str | None]] = {}


def unreachable_reason(endpoint: str, timeout: float = 3.0) -> str | None:
    """None when a TCP connection to ``endpoint`` opens within ``timeout``; else why not. The answer is kept
    for :data:`PROBE_TTL` seconds (one probe per burst of requests, not one per process's life)."""
    import socket

    kept = _PROBES.get(endpoint)
    if kept is not None and time.monotonic() - kept[0] < PROBE_TTL:
        return kept[1]
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            reason = None
    except OSError as e:
        reason = e.strerror or type(e).__name__
    _PROBES[endpoint] = (time.monotonic(), reason)
    return reason


def forget_probes() -> None:
    """Probe the hub afresh at the next check (after the endpoint or the network changed)."""
    _PROBES.clear()


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def why_unreachable() -> str | None:
    """Why nothing can be fetched now (offline mode, or the endpoint does not answer); None when it can."""
    return "HF_HUB_OFFLINE is set" if offline() else unreachable_reason(endpoint())


def hub_file(location: str) -> str:
    """The local path of ``ORG/REPO/FILE`` (a file inside a hub repository, e.g. a LoRA an alias names):
    from the Hugging Face cache, else downloaded; offline and not cached, one line saying how to fetch it."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache


    parts = location.split("/")
    if len(parts) < 3:
        raise UsageError(f"{location!r} does not name a file in a hub repository; write ORG/REPO/FILE")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    found = try_to_load_from_cache(repo, filename)
    if isinstance(found, str):
        return found
    reason = why_unreachable()
    if reason:
        raise UsageError(f"{filename} from {repo} is not in the Hugging Face cache and the hub cannot be reached "
                         f"({reason}); fetch it where there is a connection: hf download {repo} {filename}")
    try:
        return hf_hub_download(repo, filename)
    except Exception as e:  # noqa: BLE001 - gated, missing or network failure: one line
        raise RunFailure(f"cannot download {filename} from {repo}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None


def repo_config(repo: str, what: str) -> dict:
    """The config.json of hub repository ``repo`` (a ``what``: ControlNet, VAE): from the cache, else
    fetched — a few hundred bytes, so its class is checked before any weights come. One line when it is
    neither cached nor reachable."""
    import json
    from pathlib import Path

    from huggingface_hub import hf_hub_download, try_to_load_from_cache


    found = try_to_load_from_cache(repo, "config.json")
    if not isinstance(found, str):
        reason = why_unreachable()
        if reason:
            raise UsageError(f"{what} {repo} is not in the Hugging Face cache and the hub cannot be reached "
                             f"({reason}); fetch it where there is a connection: hf download {repo}")
        try:
            found = hf_hub_download(repo, "config.json", endpoint=endpoint())
        except Exception as e:  # noqa: BLE001 - gated, missing, broken: one line each
            raise hub_error(repo, e, "config.json") from None
    return json.loads(Path(found).read_text())


def hub_error(repo: str, e: Exception, name: str | None = None) -> Exception:
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError

    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if isinstance(e, GatedRepoError):
        return UsageError(f"{repo} is gated: accept its licence at {endpoint()}/{repo} while logged in, then set "
                          "HF_TOKEN to an access token (or run `hf auth login`)")
    if isinstance(e, RepositoryNotFoundError):
        return UsageError(f"{repo} does not exist on {endpoint()} (or is private: set HF_TOKEN); check the name")
    if isinstance(e, EntryNotFoundError):
        return UsageError(f"{repo} has no file {name}")
    return RunFailure(f"downloading {name or repo} failed: {text}; run the command again to resume")


def not_cached_offline(repo_id: str, what: str = "model", name: str | None = None) -> UsageError:
    """The one line for a hub model that is not in the cache while the hub cannot be reached (never
    huggingface_hub's own advice to pass local_files_only=False, which a genimg user cannot)."""
    from huggingface_hub import constants

    named = f"{name} ({repo_id})" if name and name != repo_id else repo_id
    return UsageError(f"{what} {named} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub "
                      f"cannot be reached (offline); on a machine with network run `hf download {repo_id}` and copy "
                      "the cache, or pass a local folder or .safetensors file")
