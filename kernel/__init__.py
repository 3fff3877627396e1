"""The shared kernel: what every app of the service uses and nothing app-specific.

Domain errors (``kernel.errors``), role names and the user types (``kernel.roles``), API support — the one exception
handler, pagination and idempotent POSTs (``kernel.api_support``) — SQL helpers (``kernel.sql``) and
queueing a Celery task by its name (``kernel.task_queue``).
The kernel imports no app of this project; every app may import it.
"""
