from demo import views
from demo.api import api
from django.contrib import admin
from django.urls import path
from django.views.generic import TemplateView

urlpatterns = [
    path("", views.index, name="index"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("info/", views.info, name="info"),
    path("async/", views.async_view, name="async"),
    path("stream/", views.stream, name="stream"),
    path("stream-async/", views.stream_async, name="stream-async"),
    path("events/", views.events, name="events"),
    path("events/release/", views.events_release, name="events-release"),
    path("upload/", views.upload, name="upload"),
    path("private/<path:name>", views.private, name="private"),
    path("bench/page/", views.bench_page, name="bench-page"),
    path("bench/data/", views.bench_data, name="bench-data"),
    path("big/", views.big, name="big"),
    # tests/test_browser.py: a page whose JavaScript echoes a message over the /ws/echo WebSocket
    path("ws-echo/", TemplateView.as_view(template_name="demo/ws_echo.html"), name="ws-echo"),
]
