"""``path("sidequest/", include("sidequest.contrib.django.urls"))``: the dashboard, for
staff (see views.py)."""

from __future__ import annotations

from django.urls import re_path

from sidequest.contrib.django.views import dashboard

app_name = "sidequest"
urlpatterns = [re_path(r"^(?P<path>.*)$", dashboard, name="dashboard")]
