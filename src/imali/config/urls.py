from django.urls import include, path

urlpatterns = [
    path("api/", include("imali.api.urls")),
    path("", include("imali.web.urls")),
]

# Unmatched URLs under /api/ answer JSON like every other API error.
handler404 = "imali.api.errors.page_not_found"
# A screen's parameter that is not what our pages send is a 400 naming it.
handler400 = "imali.web.errors.bad_request"
