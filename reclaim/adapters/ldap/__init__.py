"""On-premises Active Directory over LDAP (ldap3): the Directory of `directory.kind: ad`.

Users are identified by sAMAccountName, as in Nexthink's on-premises reclamation workflow. Groups
are named by distinguished name (anything containing "=", a character sAMAccountName cannot hold)
or by sAMAccountName.

Connection: LDAPS, or StartTLS on ldap://, with the server certificate validated against
RECLAIM_LDAP_CA_FILE (the system trust store when empty) and the name RECLAIM_LDAP_SERVER_NAME
(DCs are often reached by an address or alias their certificate does not carry). An unvalidated or
plain connection needs RECLAIM_LDAP_INSECURE=true and logs a warning each time the adapter starts.
One connection is reused by every call, behind a lock; the bind password is read from the Secrets
port at each (re)connect, so a rotated password is picked up.

Members are read with a paged search for `(memberOf=<group DN>)` rather than a ranged read of the
group's `member` attribute: each page of up to 1,000 users carries their attributes (ranged
retrieval yields DNs only, and each would cost another lookup), the server filters out computers,
contacts and groups, and groups of any size are read completely. Consequences, by design:
- members() lists direct members only, because only a direct membership can be removed from this
  group; member_groups() names the groups nested in it and transitive_users() lists users at any
  depth with the in-chain matching rule (for exclusion groups, and the plan's NESTED members);
- users outside RECLAIM_LDAP_BASE_DN, and members through their primary group (primaryGroupID,
  which never appears in `member`), are not listed;
- a member's join date is the `ftimeCreated` of its value in the group's msDS-ReplValueMetaData
  (Windows AD); whenChanged is not a join date, and Samba returns no metadata values, so there
  Member.added_at stays None;
- a member's account is disabled when userAccountControl has ACCOUNTDISABLE (0x2), and past its
  leave date after accountExpires (see members.account_from).

Modules: connection (LdapClient: settings checks, TLS, bind, reconnect, timeouts, result
classification), results (result codes, the server's message, entries read into Users), reads
(LdapReader: groups, members, nested groups, paging), directory (LdapDirectory: remove and add
member, the manager), members (join dates, nesting filter, account state), managers (the `manager`
attribute read back).
"""

from reclaim.adapters.ldap.directory import LdapDirectory

__all__ = ["LdapDirectory"]
