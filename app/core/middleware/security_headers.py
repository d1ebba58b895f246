"""Browser hardening headers on every response.

API answers are data, never pages: the default policy lets a browser load
nothing from them and frame none of them. A route that serves a real page
(Swagger UI at /docs) sends its own Content-Security-Policy, which is kept.
"""

from __future__ import annotations

from app.core.middleware.raw_headers import RawHeaders

API_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# Two years; sent in production only, where TLS is terminated in front of the app.
HSTS = "max-age=63072000; includeSubDomains"


def security_headers(*, hsts: bool) -> RawHeaders:
    """The headers every response carries unless it sets its own, encoded once."""
    defaults = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": API_CSP,
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if hsts:
        defaults["Strict-Transport-Security"] = HSTS
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in defaults.items()
    )
