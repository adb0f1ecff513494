"""Views exercising what a server must get right for Django: templates + static, async, streaming,
uploads, and the request metadata (script name, scheme, client) the server provides."""

import asyncio
import hashlib
import threading

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.templatetags.static import static


def _via(request: HttpRequest) -> str:
    return "asgi" if hasattr(request, "scope") else "wsgi"


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/index.html", {"via": _via(request)})


def info(request: HttpRequest) -> JsonResponse:
    meta = request.META
    return JsonResponse({
        "via": _via(request),
        "script_name": meta.get("SCRIPT_NAME", ""),
        "path": request.path,
        "path_info": request.path_info,
        "scheme": request.scheme,
        "is_secure": request.is_secure(),
        "remote_addr": meta.get("REMOTE_ADDR"),
        "absolute_uri": request.build_absolute_uri(),
        "static_css": static("demo/site.css"),
        "thread": threading.current_thread().name,
        "lifespan_started": _lifespan_started(),
    })


def _lifespan_started() -> bool:
    import sys

    asgi = sys.modules.get("testproject.asgi")  # imported in the same process by the server
    return bool(asgi is not None and asgi.STARTED["lifespan"])


async def async_view(request: HttpRequest) -> JsonResponse:
    await asyncio.sleep(0.01)
    # where the coroutine runs, and where thread-sensitive sync code it awaits runs (the ORM would)
    sync_thread = await sync_to_async(lambda: threading.current_thread().name)()
    return JsonResponse({"async": True, "via": _via(request), "path": request.path,
                         "thread": threading.current_thread().name, "sync_thread": sync_thread})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    count = int(request.GET.get("n", "5"))
    return StreamingHttpResponse((f"chunk {i}\n" for i in range(count)), content_type="text/plain")


async def _agen(count: int):
    for i in range(count):
        await asyncio.sleep(0)
        yield f"achunk {i}\n"


def stream_async(request: HttpRequest) -> StreamingHttpResponse:
    count = int(request.GET.get("n", "5"))
    return StreamingHttpResponse(_agen(count), content_type="text/plain")


_RELEASE = threading.Event()


async def _events():
    yield "data: first\n\n"
    while not _RELEASE.is_set():  # the next event waits for /events/release/
        await asyncio.sleep(0.01)
    _RELEASE.clear()
    yield "data: second\n\n"


def events(request: HttpRequest) -> StreamingHttpResponse:
    """Server-sent events from an async generator: each event must reach the client when it is
    yielded, not when the stream ends (tests/test_django.py releases the second one)."""
    return StreamingHttpResponse(_events(), content_type="text/event-stream")


def events_release(request: HttpRequest) -> JsonResponse:
    _RELEASE.set()
    return JsonResponse({"released": True})


def upload(request: HttpRequest) -> HttpResponse:
    """The upload form; ``?save=1`` stores the file in MEDIA_ROOT (default storage) and returns its URL."""
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            return JsonResponse({"error": "no file"}, status=400)
        digest = hashlib.sha256()
        size = 0
        for chunk in upload.chunks():
            digest.update(chunk)
            size += len(chunk)
        out = {"name": upload.name, "size": size, "sha256": digest.hexdigest(), "note": request.POST.get("note", "")}
        if request.GET.get("save") == "1":
            from django.core.files.storage import default_storage

            upload.seek(0)
            saved = default_storage.save("uploads/" + upload.name, upload)
            out["url"] = default_storage.url(saved)
        return JsonResponse(out)
    return render(request, "demo/upload.html")


def private(request: HttpRequest, name: str) -> HttpResponse:
    """A private download the way django-sendfile2 does it: the view checks access, then hands the file to
    the server with X-Accel-Redirect (the server serves SENDFILE_ROOT under SENDFILE_URL internally)."""
    from django.conf import settings
    from django_sendfile import sendfile

    if request.GET.get("key") != "letmein":
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return sendfile(request, settings.SENDFILE_ROOT / name, attachment=True)


def big(request: HttpRequest) -> HttpResponse:
    """``?mb=N`` MiB in one HttpResponse (tests: a slow reader must not hold the pool thread)."""
    return HttpResponse(b"x" * (int(request.GET.get("mb", "32")) << 20), content_type="application/octet-stream")


def _bench_rows(count: int) -> list[dict]:
    import random

    rng = random.Random(16)
    first = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Dennis", "Frances"]
    last = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Ritchie"]
    cities = ["Lisbon", "Osaka", "Nairobi", "Quito", "Tallinn", "Perth", "Montreal", "Lagos", "Hanoi"]
    status = ["active", "pending", "suspended", "closed"]
    return [{"id": 1000 + i, "name": f"{rng.choice(first)} {rng.choice(last)}",
             "email": f"user{1000 + i}@example.org", "city": rng.choice(cities), "status": rng.choice(status),
             "orders": rng.randint(0, 250), "balance": round(rng.uniform(-500, 25000), 2),
             "joined": f"20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
             "tags": rng.sample(["vip", "beta", "newsletter", "b2b", "churn-risk", "referral"], 2)}
            for i in range(count)]


_BENCH: dict[str, bytes] = {}


def bench_page(request: HttpRequest) -> HttpResponse:
    """The compression benchmark's ~40 KB HTML page (a customer list rendered by a template, made once)."""
    body = _BENCH.get("page")
    if body is None:
        body = _BENCH["page"] = render(request, "demo/bench_page.html", {"rows": _bench_rows(60)}).content
    return HttpResponse(body, content_type="text/html; charset=utf-8")


def bench_data(request: HttpRequest) -> HttpResponse:
    """The compression benchmark's ~200 KB JSON (the same records as an API would list them, made once)."""
    import json

    body = _BENCH.get("data")
    if body is None:
        body = _BENCH["data"] = json.dumps({"count": 1000, "results": _bench_rows(1000)}).encode()
    return HttpResponse(body, content_type="application/json")
