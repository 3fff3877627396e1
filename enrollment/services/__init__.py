"""Every write of the enrollment app (门诊慢特病 备案), one module per concern.

Each service: keyword-only, one ``transaction.atomic()``, ``select_for_update()`` on what it
changes, exactly one audit row per state change written inside the transaction (``audit``), side
effects in ``transaction.on_commit``. ``actor`` is always required (the system user for beat jobs).
Callers import the public names from here (``from enrollment import services``); the modules are:

- ``audit``: The audit kit: the system actor, audit rows (one or many), running a transition under a row lock. Every
  app's services write their state changes through these helpers, so the rule "one audit row per transition, in the
  same transaction" lives in one place.
- ``persons``: Registering and correcting a person (参保人) and the person-change audit.
- ``person_status``: Writes of a person's dated status and support categories (参保状态、死亡、脱贫、帮扶类别).
- ``filing``: Filing an application (备案申请): the eligibility checks, the person lock that holds the concurrent limit;
  the filing page's person-plus-application in one transaction.
- ``diagnosis``: Recording the diagnosis an application rests on: institution, physician title and ICD-10 checks.
- ``documents``: Documents attached to an application: type and size checks, content-addressed storage.
- ``lifecycle``: Withdraw, close, resubmit and terminate: the transitions outside the review.
- ``approval``: Approval and the validity period it starts (valid_from / valid_until by the region's policy).
- ``renewal``: Renewal (复审): a new application linked to the enrollment it continues.
- ``catalogue``: Loading the disease catalogue (病种目录) from a fixture or a file.
- ``access``: The personal-data access log: full ID numbers and records seen, by whom and why.
- ``sweep``: The daily validity sweep: approved → expiring → expired, and the expiry reminders that fall due, set-
  based and chunked, with one audit row per change and each (enrollment, offset) reminder created at most once.
- ``reminders``: Delivering expiry reminders (SMS to the patient, email and in-app list for the clinic) and marking
  them read.
- ``list_exports``: Rows of a working list's export, logging each person whose full ID number is handed out.
- ``saved_views``: A user's saved views of the working lists (save, delete; the row is its own record).
- ``api_tokens``: Every write of API tokens: issue, revoke, record use, and revoke on a password change or
  deactivation.
"""

from __future__ import annotations

from enrollment.services import api_tokens, person_status
from enrollment.services.access import (
    ACCESS_REASON_MAX_LENGTH,
    personal_data_access_record,
    personal_data_access_record_many,
)
from enrollment.services.api_tokens import (
    LAST_USED_RESOLUTION,
    MAX_LIVE_TOKENS_PER_USER,
    IssuedToken,
    api_token_issue,
    api_token_revoke,
    api_token_used,
    api_tokens_revoke_all,
    connect_signals,
    hash_key,
    logger,
    password_fingerprint,
    remember_credentials,
    revoke_on_credential_change,
    token_lifetime,
)
from enrollment.services.approval import (
    application_approve,
    approval_side_effects,
    validity_for,
)
from enrollment.services.audit import (
    TRANSITION_HOOKS,
    AuditFields,
    User,
    audit_entry,
    audit_rows_insert,
    get_system_user,
    lock_application,
    record_audit,
    run_transition,
    sql_in,
)
from enrollment.services.catalogue import (
    catalogue_aliases,
    catalogue_entry_values,
    catalogue_load,
)
from enrollment.services.diagnosis import (
    application_diagnose,
)
from enrollment.services.documents import (
    ALLOWED_DOCUMENT_TYPES,
    MAX_FILENAME_LENGTH,
    PreparedDocument,
    StoredFiles,
    document_attach,
    prepare_document,
    store_document,
)
from enrollment.services.filing import (
    PersonDetails,
    application_file_with_person,
    application_insert,
    application_submit,
    application_submit_by_id_number,
)
from enrollment.services.lifecycle import (
    APPLICATION_ACTION_SERVICES,
    APPLICATION_CLOSED_HOOKS,
    RENEWAL_WITHDRAWN_ON_TERMINATION,
    application_close,
    application_resubmit,
    application_terminate,
    application_withdraw,
    renewal_closed,
)
from enrollment.services.list_exports import (
    application_list_export_rows,
)
from enrollment.services.person_status import (
    NOTE_MAX_LENGTH,
    PENDING_STATES,
    POVERTY_RELATED,
    REFERENCE_MAX_LENGTH,
    TERMINATION_FOR_EVENT,
    EventResult,
    categories_lapse_sweep,
    person_audit,
    person_categories_replace,
    status_event_record,
    status_events_apply_due,
)
from enrollment.services.persons import (
    person_register,
)
from enrollment.services.reminders import (
    reminder_deliver,
    reminder_mark_read,
)
from enrollment.services.renewal import (
    application_renew,
)
from enrollment.services.saved_views import (
    saved_view_delete,
    saved_view_save,
)
from enrollment.services.sweep import (
    SweepResult,
    validity_sweep,
)

__all__ = [
    "ACCESS_REASON_MAX_LENGTH",
    "ALLOWED_DOCUMENT_TYPES",
    "APPLICATION_ACTION_SERVICES",
    "APPLICATION_CLOSED_HOOKS",
    "AuditFields",
    "EventResult",
    "IssuedToken",
    "LAST_USED_RESOLUTION",
    "MAX_FILENAME_LENGTH",
    "MAX_LIVE_TOKENS_PER_USER",
    "NOTE_MAX_LENGTH",
    "PENDING_STATES",
    "POVERTY_RELATED",
    "PersonDetails",
    "PreparedDocument",
    "REFERENCE_MAX_LENGTH",
    "RENEWAL_WITHDRAWN_ON_TERMINATION",
    "StoredFiles",
    "SweepResult",
    "TERMINATION_FOR_EVENT",
    "TRANSITION_HOOKS",
    "User",
    "api_token_issue",
    "api_token_revoke",
    "api_token_used",
    "api_tokens",
    "api_tokens_revoke_all",
    "application_approve",
    "application_close",
    "application_diagnose",
    "application_file_with_person",
    "application_insert",
    "application_list_export_rows",
    "application_renew",
    "application_resubmit",
    "application_submit",
    "application_submit_by_id_number",
    "application_terminate",
    "application_withdraw",
    "approval_side_effects",
    "audit_entry",
    "audit_rows_insert",
    "catalogue_aliases",
    "catalogue_entry_values",
    "catalogue_load",
    "categories_lapse_sweep",
    "connect_signals",
    "document_attach",
    "get_system_user",
    "hash_key",
    "lock_application",
    "logger",
    "password_fingerprint",
    "person_audit",
    "person_categories_replace",
    "person_register",
    "person_status",
    "record_audit",
    "personal_data_access_record",
    "personal_data_access_record_many",
    "prepare_document",
    "remember_credentials",
    "reminder_deliver",
    "reminder_mark_read",
    "renewal_closed",
    "revoke_on_credential_change",
    "run_transition",
    "saved_view_delete",
    "saved_view_save",
    "sql_in",
    "status_event_record",
    "status_events_apply_due",
    "store_document",
    "token_lifetime",
    "validity_for",
    "validity_sweep",
]
