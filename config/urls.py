from django.contrib import admin
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("syncapp.urls")),
    # The description describes the API, not itself.
    path("api/schema/", extend_schema(exclude=True)(SpectacularAPIView).as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

# Under /api/ even a path nothing serves is answered in JSON.
handler404 = "syncapp.api_errors.not_found"
