"""Nexthink Infinity: usage from a saved NQL API query, campaigns and their answers, and group
removals through a remote action (the on-premises AD path of Nexthink's licence reclamation pack).

API facts: shared/reference/api-facts.md sections 1.2 and 8 (Nexthink OpenAPI files,
docs.nexthink.com); the OpenAPI files are copied into tests/contracts/nexthink/, and the test fake
validates every request and answer against them.

- Auth: OAuth client credentials at settings.nexthink_token_url; the token is cached and refreshed
  120 s before its expires_in runs out, one fetch at a time across threads.
- NQL: the API runs only queries saved under Administration > NQL API queries, with a
  string-to-string parameter map holding exactly the parameters the query declares.
  `POST /api/v2/nql/execute` answers at once but is capped at about 1,000 rows (and ~5 s of server
  time); `POST /api/v1/nql/export` runs in the background, is polled at
  `/api/v1/nql/status/{exportId}` and leaves a CSV file (here GZIP-compressed) at a pre-signed link
  valid for 15 minutes. Execute answers in UTC (`x-utc-times`); an export's times without an
  offset are read in a configured zone (Nexthink documents no zone for exports).
- Usage always goes through export: the usage query scans every user's metering over the
  look-back window, which is the bulk, low-frequency query the export is made for; execute would
  truncate it at 1,000 rows for any organisation bigger than that (and truncation would turn real
  users into "never observed"), or time out. The download is streamed to an anonymous temporary
  file and read lazily, so a million-row export is never held in memory. The data's age is the
  newest value of usage.timestamp_column in it, not the moment the export completed.
- Answers and remote-action executions are small, frequent queries: they use v2 execute and
  switch to export when execute returns 1,000 rows or more (the result may have been cut).

Modules: auth (the token), client (authenticated calls, errors), nql (execute, export, download),
rows (reading answers: columns, texts, times), usage (the `nexthink` usage source), campaigns
(the `nexthink` campaign channel), remote_action (the `nexthink-remote-action` directory).
"""
