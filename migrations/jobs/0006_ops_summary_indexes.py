# /ops/ at 100,000 jobs (benchmarks/ops.py): the finished_at index becomes a covering one (the week's GPU
# hours per team read the index alone), and a day's failures are found on (status, finished_at). The new
# index is built before the old one goes, so the page never runs without one.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_merge_0004_job_tenant_recent_index_0004_ops_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["finished_at", "started_at", "tenant"], name="job_finished_cover"),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["status", "finished_at"], name="job_status_finished"),
        ),
        migrations.RemoveIndex(
            model_name="job",
            name="job_finished",
        ),
    ]
