from django.urls import path

from softserve.webhooks import views

urlpatterns = [
    path("webhooks", views.WebhookList.as_view(), name="webhooks"),
    path("webhooks/<uuid:pk>", views.WebhookDetail.as_view(), name="webhook"),
    path("webhooks/<uuid:pk>/deliveries", views.WebhookDeliveries.as_view(), name="webhook-deliveries"),
    path("webhooks/<uuid:pk>/test", views.WebhookTest.as_view(), name="webhook-test"),
]
