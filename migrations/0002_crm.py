from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("inbox", "0001_initial")]

    initial = False

    operations = [
        ops.AlterField(
            model_name="Conversation",
            name="crm_case_id",
            field=fields.CharField(null=True, db_index=True, max_length=64),
        ),
        ops.AddField(
            model_name="Conversation",
            name="crm_closed",
            field=fields.BooleanField(null=True),
        ),
        ops.AddField(
            model_name="Conversation",
            name="crm_pending_message_id",
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name="Conversation",
            name="crm_transcript_upto",
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name="Message",
            name="crm_comment_id",
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
