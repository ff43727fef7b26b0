from .views import view_modules

app_name = "web"

urlpatterns = [pattern for module in view_modules() for pattern in getattr(module, "urlpatterns", [])]
