from django.urls import path

from softserve.jobs import views

urlpatterns = [
    path("jobs", views.JobList.as_view(), name="jobs"),
    path("jobs/<uuid:pk>", views.JobDetail.as_view(), name="job"),
    path("jobs/<uuid:pk>/cancel", views.JobCancel.as_view(), name="job-cancel"),
    path("jobs/<uuid:pk>/retry", views.JobRetry.as_view(), name="job-retry"),
]
