"""The real API's paths, named once: the emulator serves them, the drift check and the proxy
send and recognise them."""

from __future__ import annotations

API_PREFIX = "/api/"
TOKEN_PATH = "/api/api-applications/token"
LINKS_PATH = "/api/api-applications/public/links"
