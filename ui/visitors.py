"""Who is asking: on a public server each visitor has a library of their own, which nobody else can reach.

A visitor is keyed by the signed-in Hugging Face user (a Space with ``hf_oauth: true``) or, without
sign-in, by a random 128-bit id kept in the browser (``gr.BrowserState``).  The page's load event turns
that into the session's key, held in a ``gr.State``: session state lives on the server, so no later
request can name another key or a folder, and every library action opens the library through it.
A local server has no visitors (key None): one shared 'my library', as before.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any

from seedprints.paths import home

from .context import visitor_key

BROWSER_STORAGE_KEY = "seedprints-visitor"
_BROWSER_ID = re.compile(r"^[0-9a-f]{32}$")


def oauth_enabled() -> bool:
    """True on a Space with ``hf_oauth: true`` in its README front matter (the Hub sets OAUTH_CLIENT_ID)."""
    return bool(os.environ.get("OAUTH_CLIENT_ID"))


def browser_state_secret() -> str:
    """The key BrowserState encrypts the browser's id with, kept in the data folder so the id survives restarts."""
    path = Path(home()) / "browser-state-secret"
    try:
        return path.read_text().strip()
    except OSError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_hex(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        return secret


def username(profile: Any) -> str | None:
    """The signed-in Hugging Face user of a gr.OAuthProfile, or None."""
    name = getattr(profile, "username", None) if profile is not None else None
    return str(name) if name else None


def identify(public: bool, browser_id: str | None, profile: Any) -> tuple[str | None, str | None, str]:
    """(the session's key, the browser id to keep, a note for the page) when the page loads."""
    if not public:
        return None, browser_id, ""
    user = username(profile)
    if user is not None:
        return (visitor_key(f"hf:{user}"), browser_id,
                f"**my library** is yours: kept for the Hugging Face account **{user}**; no other visitor can see or "
                "change it.")
    if not (isinstance(browser_id, str) and _BROWSER_ID.match(browser_id)):
        browser_id = secrets.token_hex(16)
    sign_in = " Sign in with Hugging Face to keep it with your account." if oauth_enabled() else ""
    return (visitor_key(f"browser:{browser_id}"), browser_id,
            "**my library** is yours alone and **temporary**: it is kept for this browser only, and lost if you clear "
            "this site's data or the server restarts without persistent storage." + sign_in)


def api_visitor(public: bool, profile: Any) -> str | None:
    """The key of an API caller: None on a local server; on a public one the signed-in user's, else '' (demo only)."""
    if not public:
        return None
    user = username(profile)
    return visitor_key(f"hf:{user}") if user is not None else ""
