"""Team pages under /app/ (URLs are part of issue 12's contract); /ops/ pages join this app too."""

from django.urls import path

from webui.views import (
    aliases,
    datasets,
    evalsets,
    feedback,
    invitations,
    jobs,
    ops,
    pages,
    playground,
    prompts,
    team_settings,
    traffic,
    webhooks,
)

app_name = "webui"

urlpatterns = [
    path("", pages.front_door, name="front-door"),
    path("app/", pages.home, name="home"),
    path("app/team", pages.switch_team, name="switch-team"),
    path("app/datasets", datasets.dataset_list, name="datasets"),
    path("app/datasets/upload", datasets.dataset_upload, name="dataset-upload"),
    path("app/datasets/<uuid:pk>/versions/<int:number>", datasets.dataset_version, name="dataset-version"),
    path(
        "app/datasets/<uuid:pk>/versions/<int:number>/download",
        datasets.dataset_download,
        name="dataset-download",
    ),
    path("app/prompts", prompts.prompt_list, name="prompts"),
    path("app/prompts/new", prompts.prompt_new, name="prompt-new"),
    path("app/prompts/template-preview", prompts.template_preview, name="template-preview"),
    path("app/prompts/<str:name>", prompts.prompt_detail, name="prompt"),
    path("app/prompts/<str:name>/aliases", prompts.alias_move, name="alias-move"),
    path("app/prompts/<str:name>/eval-set", evalsets.eval_set_pin, name="eval-set-pin"),
    path(
        "app/prompts/<str:name>/versions/<int:number>/evaluate",
        evalsets.version_evaluate,
        name="version-evaluate",
    ),
    path("app/prompts/<str:name>/feedback-settings", feedback.feedback_settings, name="feedback-settings"),
    path("app/prompts/<str:name>/feedback-dataset", feedback.feedback_dataset, name="feedback-dataset"),
    path("app/prompts/<str:name>/aliases/verdict", aliases.alias_verdict, name="alias-verdict"),
    path("app/prompts/<str:name>/compare", aliases.version_compare, name="prompt-compare"),
    path("app/prompts/<str:name>/traffic", traffic.prompt_traffic, name="prompt-traffic"),
    path(
        "app/prompts/<str:name>/versions/<int:number>/artifact/<str:fmt>",
        prompts.artifact_download,
        name="artifact",
    ),
    path(
        "app/prompts/<str:name>/versions/<int:number>/tokens", prompts.version_tokens, name="version-tokens"
    ),
    path("app/jobs", jobs.job_list, name="jobs"),
    path("app/jobs/new", jobs.job_new, name="job-new"),
    path("app/jobs/<uuid:pk>", jobs.job_detail, name="job"),
    path("app/jobs/<uuid:pk>/live", jobs.job_live, name="job-live"),
    path("app/jobs/<uuid:pk>/cancel", jobs.job_transition, {"transition": "cancel"}, name="job-cancel"),
    path("app/jobs/<uuid:pk>/retry", jobs.job_transition, {"transition": "retry"}, name="job-retry"),
    path("app/playground", playground.playground, name="playground"),
    path("app/settings", team_settings.settings_page, name="settings"),
    path("app/settings/keys", team_settings.key_create, name="key-create"),
    path("app/settings/keys/<uuid:pk>/revoke", team_settings.key_revoke, name="key-revoke"),
    path("app/settings/members", team_settings.member_add, name="member-add"),
    path("app/settings/members/<uuid:pk>", team_settings.member_change, name="member-change"),
    path(
        "app/settings/invitations/<uuid:pk>/withdraw",
        team_settings.invitation_withdraw,
        name="invitation-withdraw",
    ),
    path("app/webhooks", webhooks.webhook_list, name="webhooks"),
    path("app/webhooks/<uuid:pk>", webhooks.webhook_detail, name="webhook"),
    # The signed-in person's own invitations, from any team (no team needed to see them).
    path("app/invitations", invitations.invitation_list, name="invitations"),
    path(
        "app/invitations/<uuid:pk>/accept",
        invitations.invitation_answer,
        {"accept": True},
        name="invitation-accept",
    ),
    path(
        "app/invitations/<uuid:pk>/decline",
        invitations.invitation_answer,
        {"accept": False},
        name="invitation-decline",
    ),
    # Operators (Django staff; anyone else: 404).
    path("ops/", ops.dashboard, name="ops"),
    path("ops/panel", ops.panel, name="ops-panel"),
    path("ops/api/summary", ops.summary_json, name="ops-summary"),
    path("ops/jobs/<uuid:pk>/<str:action>", ops.job_action, name="ops-job-action"),
]
