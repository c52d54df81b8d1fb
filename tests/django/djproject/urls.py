from django.urls import include, path

urlpatterns = [path("ops/sidequest/", include("sidequest.contrib.django.urls"))]
