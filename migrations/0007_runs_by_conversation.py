"""An index on automation runs by conversation: each conversation page reads its runs (without it,
every view scanned the runs of every conversation)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('inbox', '0006_revisions_audit')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='AutomationRun',
            index=Index(fields=['conversation_id', 'id']),
        ),
    ]
