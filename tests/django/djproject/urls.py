from django.urls import include, path

urlpatterns = [
    path("ops/sidequest/", include("sidequest.contrib.django.urls")),
    # Mounted without the trailing slash, as a user may write it (tests/django/test_dashboard.py).
    path("ops-bare/sidequest", include("sidequest.contrib.django.urls", namespace="bare")),
]
