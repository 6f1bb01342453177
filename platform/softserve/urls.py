from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from softserve.ops import views as ops_views

urlpatterns = [
    # Also answered by ProbeMiddleware before host checks; listed here so they resolve and reverse.
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include("softserve.tenancy.urls")),
    path("api/v1/", include("softserve.datasets.urls")),
    path("api/v1/", include("softserve.serving.urls")),  # before prompts: `prompts/{name}:predict`
    path("api/v1/", include("softserve.prompts.urls")),
    path("api/v1/", include("softserve.jobs.urls")),
    path("", include("webui.urls")),
]
# A readable page with the request id instead of a bare 500 (API errors keep their JSON shape).
handler500 = "webui.views.pages.server_error"
