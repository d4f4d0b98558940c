"""Microsoft Graph (Entra ID): the licensing-group Directory and the `entra-signins` UsageSource.

One GraphClient per process does the HTTP: an app-only token from msal (client secret or
certificate read through the Secrets port; msal caches it and fetches a new one five minutes
before expiry), one pooled requests.Session, `x-ms-throttle-priority: low` on every request, and
retries that honour Retry-After (429/503/504 and other 5xx, dropped connections, malformed JSON)
within a bounded number of attempts and a time budget, then TransientError(retry_after) so the
queue retries later. Errors are classified by HTTP status and Graph error code, never by the
wording of a message (documented exceptions, where Graph gives no code of its own: "already a
member" on add, a restricted administrative unit, and assignLicense's inherited or not-held licence).

Application permissions (admin consent): GroupMember.ReadWrite.All (read groups and members,
remove and add members), User.Read.All (resolve users by UPN or mail; licence states for the seat
check of licences.py; without it member listings come back 200 with nameless users, which
paths.listed_user refuses), AuditLog.Read.All (+ Entra ID P1/P2; older docs add Directory.Read.All)
for the entra-signins usage source, LicenseAssignment.ReadWrite.All (or User.ReadWrite.All) for
entra-licence.

Modules: client (HTTP, retries, $batch), auth (msal credentials), pacing (write pacer, report
rate limiter), paths (resource paths, OData literals, fields read), errors (permissions named in
401/403), directory (groups and member writes), members (EntraDirectory: who holds the licence),
licences (seat checks), signins (the entra-signins usage source), assignments
(EntraLicenceDirectory: a SKU's direct assignments, `directory.kind: entra-licence`).
"""
