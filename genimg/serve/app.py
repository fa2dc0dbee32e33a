"""The HTTP side of `genimg serve`: genimg's own API, A1111's and OpenAI's images API and the page, each a
router, on one worker.

Every route builds a :class:`GenerationSpec` through the one way in (``GenerationSpec.from_dict``) and hands
it to the worker, which runs it through ``plan``/``run`` as the CLI does; no route generates on its own.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from genimg.errors import UsageError
from genimg.serve import api_a1111, api_genimg, api_openai, page
from genimg.serve.common import RETRY_AFTER, DisconnectWatch, NotFound, api_of, error_response, in_api_words
from genimg.serve.jobs import QueueFull, Worker
from genimg.serve.safety import MAX_BODY


def authorized(header: str, token: str) -> bool:
    """``Authorization: Bearer TOKEN``, or HTTP Basic with any user name and TOKEN as the password (what A1111
    clients such as Open WebUI and webuiapi can send), compared in constant time."""
    import base64
    import binascii
    import hmac

    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode(), token.encode())


def create_app(worker: Worker, token: str | None = None) -> FastAPI:
    app = FastAPI(title="genimg", docs_url=None, redoc_url=None)
    app.state.worker = worker
    app.state.options = {"sd_model_checkpoint": None}  # A1111's /options: the model a request without one uses

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token and not authorized(request.headers.get("authorization", ""), token):
            return error_response("a token is required: send Authorization: Bearer TOKEN (or HTTP Basic with the "
                                  "token as the password)", 401, api_of(request.url.path))
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return JSONResponse({"error": f"the request is larger than {MAX_BODY // 2**20} MB"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(UsageError)
    async def usage_error(request, error: UsageError):
        """A bad request in the words of the API it came through (its field names, not the CLI's flags)."""
        api = api_of(request.url.path)
        return error_response(in_api_words(str(error), api), 404 if isinstance(error, NotFound) else 400, api)

    @app.exception_handler(QueueFull)
    async def queue_full(request, error: QueueFull):
        return error_response(str(error), 503, api_of(request.url.path), {"Retry-After": RETRY_AFTER})

    for module in (page, api_genimg, api_a1111, api_openai):
        app.include_router(module.router)
    app.add_middleware(DisconnectWatch)
    return app
