"""django-ninja API: ``/api/health`` is the benchmark endpoint."""

from ninja import NinjaAPI

api = NinjaAPI(title="django-granian test project", docs_url=None)


@api.get("/health")
def health(request):
    return {"status": "ok"}
