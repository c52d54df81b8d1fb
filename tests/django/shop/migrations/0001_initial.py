from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[("id", models.BigAutoField(primary_key=True, serialize=False)),
                    ("number", models.IntegerField())],
        ),
        migrations.CreateModel(
            name="Event",
            fields=[("id", models.BigAutoField(primary_key=True, serialize=False)),
                    ("kind", models.CharField(max_length=40)),
                    ("key", models.CharField(max_length=100)),
                    ("value", models.TextField(default=""))],
        ),
    ]
