from django.urls import path, re_path

from softserve.serving import views

# Before the prompts app's `prompts/<str:name>`, which would otherwise take `name:predict` as a name.
urlpatterns = [
    re_path(r"^prompts/(?P<name>[^/:]+):predict$", views.Predict.as_view(), name="prompt-predict"),
    path("prompts/<str:name>/traffic", views.Traffic.as_view(), name="prompt-traffic"),
    path("completions", views.Completions.as_view(), name="completions"),
    path("usage", views.UsageList.as_view(), name="usage"),
    path(
        "predictions/<uuid:prediction_id>/feedback",
        views.PredictionFeedback.as_view(),
        name="prediction-feedback",
    ),
    path("prompts/<str:name>/feedback", views.PromptFeedback.as_view(), name="prompt-feedback"),
    path(
        "prompts/<str:name>/feedback-dataset",
        views.PromptFeedbackDataset.as_view(),
        name="prompt-feedback-dataset",
    ),
    path("models", views.ModelList.as_view(), name="models"),
    path("models/<str:model_id>", views.ModelDetail.as_view(), name="model"),
]
