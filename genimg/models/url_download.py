"""`genimg models download URL`: a single-file checkpoint (a Civitai-style link) fetched with plain HTTP
range requests — resumed when a connection breaks, checked before it is renamed into place."""

from __future__ import annotations

from genimg.errors import RunFailure, UsageError
from genimg.models.checkpoint import PICKLE_SUFFIXES
from genimg.files import free_space, made_folder
from genimg.models.download import SPACE_MARGIN

CHECKPOINT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
URL_ATTEMPTS = 4  # a connection that breaks is picked up where it stopped, this many times in all


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def download_url(url: str, folder, sha256: str | None = None, allow_pickle: bool = False, overwrite: bool = False,
                 progress=None):
    """A single-file checkpoint (a Civitai-style download link) saved into ``folder`` under the name the
    server gives (Content-Disposition) or the URL's; fetched into ``NAME.part`` — resumed with a Range
    request when the connection breaks — checked (a safetensors header, the SHA-256 when given) and only
    then renamed. Returns the saved path."""
    import hashlib
    import http.client
    import os
    import urllib.request
    from pathlib import Path

    folder = Path(folder)
    with _open(urllib.request.Request(url, method="HEAD")) as response:
        name = _file_name(url, response.headers.get("Content-Disposition"))
        total = int(response.headers.get("Content-Length") or 0)
    suffix = Path(name).suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise UsageError(f"{url} does not name a checkpoint ({name!r}; expected {', '.join(CHECKPOINT_SUFFIXES)})")
    if suffix != ".safetensors" and not allow_pickle:
        raise UsageError(f"{name} is a pickle checkpoint, which can run code when loaded; find its .safetensors "
                         "version, or pass --allow-pickle if you trust the source")
    target = folder / name
    if target.exists() and not overwrite:
        raise UsageError(f"{target} already exists; pass --overwrite to replace it")
    with made_folder(folder):
        if total and total * SPACE_MARGIN > free_space(folder):
            raise UsageError(f"{name} needs {total / 1e9:.2f} GB but {folder} has {free_space(folder) / 1e9:.2f} GB free")
        part = target.with_name(target.name + ".part")
        failure = None
        for _ in range(URL_ATTEMPTS):
            done = part.stat().st_size if part.exists() else 0
            if total and done >= total:
                break
            request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
            try:
                with _open(request) as response, open(part, "ab" if done and response.status == 206 else "wb") as out:
                    done = done if response.status == 206 else 0
                    while chunk := response.read(2**20):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress("download", file=name, done=done, total=total or done)
            except (OSError, http.client.HTTPException) as e:  # a reset, a timeout
                failure = e
                continue
            if not total or done >= total:  # else the body stopped short: ask for the rest
                break
        size = part.stat().st_size if part.exists() else 0
        if total and size != total:
            why = f" ({failure})" if failure else ""
            raise RunFailure(f"{name}: {size} of {total} bytes arrived{why}; run the command again to resume from {part.name}")
        if suffix == ".safetensors":
            from genimg.models.checkpoint import safetensors_header

            try:
                safetensors_header(part)
            except UsageError:
                part.unlink()
                raise UsageError(f"{url} did not give a safetensors file (a login page or an error page?); "
                                 "nothing was saved") from None
        if sha256:
            digest = hashlib.sha256()
            with open(part, "rb") as f:
                while block := f.read(2**24):
                    digest.update(block)
            if digest.hexdigest().lower() != sha256.lower():
                part.unlink()
                raise RunFailure(f"{name}: its SHA-256 is {digest.hexdigest()}, not {sha256}; the download is damaged "
                                 "or the file is another one; nothing was saved")
        os.replace(part, target)
    return target


def _open(request):
    import urllib.error
    import urllib.request

    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        raise UsageError(f"{request.full_url} answered {e.code} {e.reason}"
                         + ("; it may need a login or an API token" if e.code in (401, 403) else "")) from None
    except urllib.error.URLError as e:
        raise UsageError(f"cannot reach {request.full_url} ({e.reason})") from None


def _file_name(url: str, disposition: str | None) -> str:
    """The server's file name (``Content-Disposition: attachment; filename="x.safetensors"``), else the
    URL's last part; made safe to use as a file name."""
    import re
    from pathlib import PurePosixPath
    from urllib.parse import unquote, urlparse

    found = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition or "")
    name = unquote(found.group(1)) if found else PurePosixPath(unquote(urlparse(url).path)).name
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "checkpoint"
