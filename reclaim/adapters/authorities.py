"""Which token authorities are Microsoft's own: the one place msal and azure-identity learn it.

For these hosts the clients keep instance discovery (the authority is validated against
Microsoft's metadata). Any other host (a sovereign cloud's private authority, an on-premises proxy,
the test fakes) is used as given: discovery would ask login.microsoft.com about a host it cannot
know, so it is switched off there, and only there.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
)


def is_microsoft_authority(url: str) -> bool:
    """True for https://login.microsoftonline.com[/tenant] and the other hosts above."""
    return (urlsplit(url).hostname or "").lower() in MICROSOFT_AUTHORITY_HOSTS
