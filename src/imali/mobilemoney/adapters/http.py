"""The HTTP plumbing both providers share: one keep-alive httpx client per adapter (the project's
client library for outbound HTTP), explicit time limits on every request, and errors sorted into
"refused" (ProviderError: do not retry) and "no usable answer" (ProviderUnavailable: query the
status, then retry)."""

from __future__ import annotations

import httpx

from .base import ProviderError, ProviderUnavailable

# Connecting is quick or the provider is down: a short connect limit leaves the rest of the caller's
# budget for the answer itself.
CONNECT_TIMEOUT = 5.0


def new_session() -> httpx.Client:
    # trust_env off: no proxy or netrc from the environment, the providers are called directly.
    # Redirects are not followed: a provider that redirects a payment request is treated as refusing it.
    return httpx.Client(trust_env=False, follow_redirects=False)


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))


def request(session: httpx.Client, method: str, url: str, *, timeout: float, **kwargs) -> httpx.Response:
    try:
        response = session.request(method, url, timeout=_timeout(timeout), **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(f"The provider did not answer in time ({type(exc).__name__}).") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ProviderUnavailable(f"The provider could not be reached ({type(exc).__name__}).") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderUnavailable(f"The provider answered {response.status_code}.", status=response.status_code)
    return response


def refused(response: httpx.Response) -> ProviderError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = (body.get("errorMessage") or body.get("message") or body.get("ResponseDescription")
               or response.reason_phrase or "refused")
    code = str(body.get("errorCode") or body.get("code") or "")
    return ProviderError(f"The provider refused the request ({response.status_code}): {message}",
                         status=response.status_code, code=code)
