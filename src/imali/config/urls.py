from django.urls import include, path

urlpatterns = [
    path("api/", include("imali.api.urls")),
    path("", include("imali.web.urls")),
]

# Unmatched URLs under /api/ answer JSON like every other API error.
handler404 = "imali.api.errors.page_not_found"
