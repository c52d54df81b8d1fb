"""``path("sidequest/", include("sidequest.contrib.django.urls"))``: the dashboard, for
staff (see views.py)."""

from __future__ import annotations

from django.urls import re_path

from sidequest.contrib.django.views import dashboard

app_name = "sidequest"
# [\s\S], not ".": a queue named with a line break (a Ruby client takes it) opens too.
urlpatterns = [re_path(r"^(?P<path>[\s\S]*)$", dashboard, name="dashboard")]
