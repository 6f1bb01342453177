from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from softserve.ops import views as ops_views
from softserve.tenancy.accounts import ThrottledLoginView

urlpatterns = [
    # Also answered by ProbeMiddleware before host checks; listed here so they resolve and reverse.
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    # Sign in and out only: password reset needs a mail backend, and there is none.
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # GET only: OPTIONS would render the Swagger page's HTML renderer without a template (a 500).
    path(
        "api/docs/",
        # The split view serves its start-up script as a file (?script), not inline: the CSP allows it.
        SpectacularSwaggerSplitView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="docs",
    ),
    path("api/v1/", include("softserve.tenancy.urls")),
    path("api/v1/", include("softserve.datasets.urls")),
    path("api/v1/", include("softserve.serving.urls")),  # before prompts: `prompts/{name}:predict`
    path("api/v1/", include("softserve.prompts.urls")),
    path("api/v1/", include("softserve.jobs.urls")),
    path("api/v1/", include("softserve.webhooks.urls")),
    path("", include("webui.urls")),
]

# Outages (database, Redis, broker) outside DRF views are 503s, other failures 500s: JSON under /api/,
# a short page elsewhere, with the request id.
handler500 = "softserve.api.errors.server_error"
# A URL under /api/ that resolves to nothing: JSON in the error shape (a page elsewhere).
handler404 = "softserve.api.errors.not_found"
