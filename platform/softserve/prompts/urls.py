from django.urls import path

from softserve.prompts import views

urlpatterns = [
    path("prompts", views.PromptList.as_view(), name="prompts"),
    path("prompts/<str:name>", views.PromptDetail.as_view(), name="prompt"),
    path("prompts/<str:name>/versions", views.VersionList.as_view(), name="prompt-versions"),
    path("prompts/<str:name>/versions/<int:number>", views.VersionDetail.as_view(), name="prompt-version"),
    path(
        "prompts/<str:name>/versions/<int:number>/artifact/<str:fmt>",
        views.VersionArtifact.as_view(),
        name="prompt-version-artifact",
    ),
    path(
        "prompts/<str:name>/versions/<int:number>/evaluate",
        views.VersionEvaluate.as_view(),
        name="prompt-version-evaluate",
    ),
    path(
        "prompts/<str:name>/versions/<int:number>/nearest-tokens",
        views.VersionTokens.as_view(),
        name="prompt-version-tokens",
    ),
    path("prompts/<str:name>/aliases/<str:alias>", views.AliasDetail.as_view(), name="prompt-alias"),
    path("prompts/<str:name>/aliases/<str:alias>/gate", views.AliasGate.as_view(), name="prompt-alias-gate"),
    path("prompts/<str:name>/compare", views.VersionCompare.as_view(), name="prompt-compare"),
]
