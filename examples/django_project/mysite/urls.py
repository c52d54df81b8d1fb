from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("sidequest/", include("sidequest.contrib.django.urls")),  # staff only
]
