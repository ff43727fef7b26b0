from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .endpoints import endpoint_modules

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    *[pattern for module in endpoint_modules() for pattern in getattr(module, "urlpatterns", [])],
]
