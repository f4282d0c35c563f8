# Written by hand: neither the HNSW index nor the table's fillfactor is part of the model state
# (see 0002), so makemigrations stays clean on every database.
#
# The cache's HNSW index is rebuilt as a partial index over the shared pool (scope IS NULL),
# its parameters written out (pgvector's defaults, m=16 and ef_construction=64, which measured
# best for recall per millisecond: docs/benchmarks.md). A scoped entry (the semantic cache's
# default scope is the session) is then searched exactly through the (namespace, scope) index,
# which finds it whatever the rest of the table holds, and writing one pays no HNSW insert;
# the shared pool's search no longer loses its candidates to scoped rows that the index would
# return and the query then drop. Both operations do nothing where the column is not a vector
# (SQLite, PostgreSQL without pgvector). Rebuilding reads every shared embedding: on a large
# cache this migration takes a while and blocks writes to the table meanwhile.
#
# On PostgreSQL the table also gets fillfactor 80: a hit adds one to the row's hits, and with
# room left on the page that update is HOT (no new index entries); on a full page it would also
# insert the row into the HNSW index again, a millisecond or two on each first hit. Existing
# pages keep their layout until rewritten (VACUUM FULL, or the entries being replaced).

from django.db import migrations, models

import warlock_ai.vector

FILLFACTOR = 80


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = apps.get_model("warlock_ai", "CacheEntry")._meta.db_table
        schema_editor.execute(
            f"ALTER TABLE {schema_editor.quote_name(table)} SET (fillfactor = {FILLFACTOR})"
        )


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = apps.get_model("warlock_ai", "CacheEntry")._meta.db_table
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("warlock_ai", "0005_checkpoint_turn_key"),
    ]

    operations = [
        warlock_ai.vector.DropVectorIndex(
            model_name="cacheentry", field_name="embedding", name="warlock_cache_embed_hnsw"
        ),
        warlock_ai.vector.CreateVectorIndex(
            model_name="cacheentry",
            field_name="embedding",
            name="warlock_cache_embed_hnsw",
            m=16,
            ef_construction=64,
            condition=models.Q(scope__isnull=True),
        ),
        migrations.RunPython(set_fillfactor, reset_fillfactor),
    ]
