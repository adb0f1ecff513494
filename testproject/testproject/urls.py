from demo import views
from demo.api import api
from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("", views.index, name="index"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("info/", views.info, name="info"),
    path("async/", views.async_view, name="async"),
    path("stream/", views.stream, name="stream"),
    path("stream-async/", views.stream_async, name="stream-async"),
    path("upload/", views.upload, name="upload"),
]
