"""The service layer: the domain rules of SPEC §4–§6 that are not SQL.

Each function takes its connection (the caller owns the transaction) and the principal,
calls the DAO, and raises `errors.ServiceError`s; it knows nothing of HTTP. The views
parse a request, make one call here and shape the response.

    pieces    list page and detail, with the parent checks and who sees which piece
    cascade   soft delete and restore down the hierarchy, audited
    sync      the all-or-nothing bulk upsert
    audit     the audit trail's list
    tenancy   the tenant a request on one GUID acts in (SystemAdmin's reach)
"""
