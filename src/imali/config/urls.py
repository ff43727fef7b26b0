from django.urls import include, path

urlpatterns = [
    path("api/", include("imali.api.urls")),
    path("", include("imali.web.urls")),
]
