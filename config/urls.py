from django.contrib import admin
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from syncapp import monitoring

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("syncapp.urls")),
    # The description describes the API, not itself.
    path("api/schema/", extend_schema(exclude=True)(SpectacularAPIView).as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("metrics", monitoring.MetricsView.as_view(), name="metrics"),
    path("health/live", monitoring.live, name="health-live"),
    path("health/ready", monitoring.ready, name="health-ready"),
]

# Under /api/ even a path nothing serves is answered in JSON.
handler404 = "syncapp.api_errors.not_found"
