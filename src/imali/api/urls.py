from django.urls import path

from .endpoints import endpoint_modules
from .schema import SignedInDocsView, SignedInSchemaView

app_name = "api"

urlpatterns = [
    path("schema/", SignedInSchemaView.as_view(), name="schema"),
    path("docs/", SignedInDocsView.as_view(url_name="api:schema"), name="docs"),
    *[pattern for module in endpoint_modules() for pattern in getattr(module, "urlpatterns", [])],
]
