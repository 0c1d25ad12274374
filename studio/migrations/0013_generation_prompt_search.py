"""Full-text search of prompts on PostgreSQL: a GIN index of studio.models.prompt_vector(), built without
locking the table (CONCURRENTLY, so outside a transaction). Nothing on SQLite, which searches substrings."""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations

INDEX_NAME = "generation_prompt_search"


def _index():
    from studio.models import prompt_vector

    return GinIndex(prompt_vector(), name=INDEX_NAME)


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("studio", "Generation")
    sql = str(_index().create_sql(model, schema_editor, concurrently=True))
    schema_editor.execute(sql.replace("CREATE INDEX CONCURRENTLY", "CREATE INDEX CONCURRENTLY IF NOT EXISTS", 1))


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{INDEX_NAME}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("studio", "0012_generation_timings")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
