"""The HTTP plumbing both providers share: one keep-alive session per adapter (requests, already
pinned in requirements.lock: httpx is not, and a second client library was not worth a new
dependency), errors sorted into "refused" (ProviderError: do not retry) and "no usable answer"
(ProviderUnavailable: query the status, then retry)."""

from __future__ import annotations

import requests

from .base import ProviderError, ProviderUnavailable


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the providers are called directly
    return session


def request(session: requests.Session, method: str, url: str, *, timeout: float, **kwargs) -> requests.Response:
    try:
        response = session.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.Timeout as exc:
        raise ProviderUnavailable(f"The provider did not answer in time ({type(exc).__name__}).") from None
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"The provider could not be reached ({type(exc).__name__}).") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderUnavailable(f"The provider answered {response.status_code}.", status=response.status_code)
    return response


def refused(response: requests.Response) -> ProviderError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("errorMessage") or body.get("message") or body.get("ResponseDescription") or response.reason or "refused"
    code = str(body.get("errorCode") or body.get("code") or "")
    return ProviderError(f"The provider refused the request ({response.status_code}): {message}",
                         status=response.status_code, code=code)
