"""OpenAPI post-processing: links between operations (what a client does next with what it got back).

drf-spectacular does not write OpenAPI ``links``; this hook adds the filing workflow's: a registered person
is looked up and filed for, a filed application is read, diagnosed, given documents, withdrawn or
terminated, a diagnosed one approved at once. Clients read them in Swagger UI; the stateful schemathesis
run (tests/security/test_schemathesis.py) follows them to chain real requests.
"""

from __future__ import annotations

from typing import Any

# (path, method, status) of the response → {link name: (operationId, parameters, requestBody)}
APPLICATION_ID = {"path.id": "$response.body#/id"}
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, dict[str, str] | None, dict[str, str] | None]]] = {
    ("/api/v1/persons/", "post", "201"): {
        "LookUpPerson": ("v1_persons_list", {"query.id_number": "$response.body#/id_number"}, None),
        "LookUpPersonByPost": ("v1_persons_lookup_create", None, {"id_number": "$response.body#/id_number"}),
        "QueryCoverage": ("v1_coverage_create", None, {"id_number": "$response.body#/id_number"}),
        "FileApplication": ("v1_applications_create", None, {"id_number": "$response.body#/id_number"}),
    },
    ("/api/v1/applications/", "post", "201"): {
        "GetApplication": ("v1_applications_retrieve", APPLICATION_ID, None),
        "DiagnoseApplication": ("v1_applications_diagnose_create", APPLICATION_ID, None),
        "AttachDocument": ("v1_applications_documents_create", APPLICATION_ID, None),
        "WithdrawApplication": ("v1_applications_withdraw_create", APPLICATION_ID, None),
        "TerminateApplication": ("v1_applications_terminate_create", APPLICATION_ID, None),
    },
    ("/api/v1/applications/{id}/diagnose/", "post", "200"): {
        "ApproveImmediately": ("v1_immediate_approvals_create", None, {"application": "$response.body#/id"}),
        "WithdrawApplication": ("v1_applications_withdraw_create", APPLICATION_ID, None),
    },
    ("/api/v1/applications/{id}/", "get", "200"): {
        "DiagnoseApplication": ("v1_applications_diagnose_create", APPLICATION_ID, None),
        "WithdrawApplication": ("v1_applications_withdraw_create", APPLICATION_ID, None),
        "ApplicationReminders": ("v1_applications_reminders_list", APPLICATION_ID, None),
    },
}


def add_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """A drf-spectacular POSTPROCESSING_HOOKS entry; operations missing from the schema get no link."""
    operation_ids = {
        operation.get("operationId")
        for item in result.get("paths", {}).values()
        for operation in item.values()
        if isinstance(operation, dict)
    }
    for (path, method, status), links in LINKS.items():
        response = result.get("paths", {}).get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        for name, (operation_id, parameters, body) in links.items():
            if operation_id not in operation_ids:
                continue
            link: dict[str, Any] = {"operationId": operation_id}
            if parameters:
                link["parameters"] = dict(parameters)
            if body:
                link["requestBody"] = dict(body)
            response.setdefault("links", {})[name] = link
    return result
