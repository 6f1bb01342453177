"""Team pages under /app/ (URLs are part of issue 12's contract); /ops/ pages join this app too."""

from django.urls import path

from webui.views import ops, pages

app_name = "webui"

urlpatterns = [
    path("", pages.front_door, name="front-door"),
    path("app/", pages.home, name="home"),
    path("app/team", pages.switch_team, name="switch-team"),
    path("app/datasets", pages.placeholder, name="datasets"),
    path("app/prompts", pages.placeholder, name="prompts"),
    path("app/prompts/new", pages.placeholder, name="prompt-new"),
    path("app/prompts/<str:name>", pages.placeholder, name="prompt"),
    path("app/jobs", pages.placeholder, name="jobs"),
    path("app/jobs/new", pages.placeholder, name="job-new"),
    path("app/jobs/<uuid:pk>", pages.placeholder, name="job"),
    path("app/playground", pages.placeholder, name="playground"),
    path("app/settings", pages.placeholder, name="settings"),
    # Operators (Django staff; anyone else: 404).
    path("ops/", ops.dashboard, name="ops"),
    path("ops/panel", ops.panel, name="ops-panel"),
    path("ops/api/summary", ops.summary_json, name="ops-summary"),
    path("ops/jobs/<uuid:pk>/<str:action>", ops.job_action, name="ops-job-action"),
]
