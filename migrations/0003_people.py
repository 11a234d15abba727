from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('inbox', '0002_crm')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SignInLock',
            fields=[
                ('email_key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=254)),
                ('failures', fields.IntField(default=0)),
                ('window_start', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sign_in_locks', 'app': 'inbox', 'pk_attr': 'email_key', 'table_description': 'Failed sign-ins per email (not per IP, so it holds behind a proxy) and the lock they set.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Team',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('key', fields.CharField(unique=True, max_length=100)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'teams', 'app': 'inbox', 'pk_attr': 'id', 'table_description': 'A group of agents that topics route conversations to. Names compare case-insensitively.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('email', fields.CharField(max_length=254)),
                ('email_key', fields.CharField(unique=True, max_length=254)),
                ('name', fields.CharField(max_length=100)),
                ('role', fields.CharField(max_length=8)),
                ('active', fields.BooleanField(default=True)),
                ('language', fields.CharField(null=True, max_length=8)),
                ('password_hash', fields.CharField(max_length=255)),
                ('session_epoch', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users', 'app': 'inbox', 'pk_attr': 'id', 'table_description': 'A person who signs in to the web inbox: an admin or an agent.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UserTeam',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('inbox.User', source_field='user_id', db_constraint=True, to_field='id', related_name='team_links', on_delete=OnDelete.CASCADE)),
                ('team', fields.ForeignKeyField('inbox.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='user_links', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'user_teams', 'app': 'inbox', 'unique_together': (('user', 'team'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Contact',
            name='name_key',
            field=fields.CharField(null=True, max_length=255),
        ),
        ops.AddField(
            model_name='Conversation',
            name='assignee',
            field=fields.ForeignKeyField('inbox.User', source_field='assignee_id', null=True, db_constraint=True, to_field='id', related_name='assigned', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='Conversation',
            name='priority',
            field=fields.SmallIntField(default=2, db_default=2),
        ),
        ops.AddField(
            model_name='Conversation',
            name='team',
            field=fields.ForeignKeyField('inbox.Team', source_field='team_id', null=True, db_constraint=True, to_field='id', related_name='conversations', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='Conversation',
            name='waiting_since',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name='Conversation',
            index=Index(fields=['status', 'priority', 'waiting_since', 'id']),
        ),
        ops.AddIndex(
            model_name='ConversationEvent',
            index=Index(fields=['conversation_id', 'id']),
        ),
        ops.AddField(
            model_name='Label',
            name='priority',
            field=fields.SmallIntField(default=2, db_default=2),
        ),
        ops.AddField(
            model_name='Label',
            name='team',
            field=fields.ForeignKeyField('inbox.Team', source_field='team_id', null=True, db_constraint=True, to_field='id', related_name='topics', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='Message',
            name='delivery',
            field=fields.CharField(null=True, max_length=8),
        ),
        ops.AddIndex(
            model_name='Message',
            index=Index(fields=['conversation_id', 'id']),
        ),
        ops.AddIndex(
            model_name='MessageTag',
            index=Index(fields=['conversation_id', 'id']),
        ),
    ]
