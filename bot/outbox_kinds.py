"""Names of the outbox job kinds (shared by the inbox that enqueues and the handlers that run them)."""

REPLY = "reply"
CRM_SYNC = "crm_sync"
