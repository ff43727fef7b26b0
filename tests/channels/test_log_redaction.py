"""The aggregators' callback token travels in the callback URL's query string: no log line may
carry it — not the development server's access log (`django.server`), not Django's 4xx warnings
(`django.request`), not a peer's "callback failed" line. The path stays readable."""

import logging
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.core.servers.basehttp import WSGIRequestHandler
from django.db import connections
from django.test.testcases import LiveServerThread

from imali.api.endpoints.callbacks import callback_token, callback_url
from imali.core.logging import REDACTED, redact_secrets
from imali.messaging.models import Gateway
from imali.peers.aggregators import AfricasTalkingPeer, AggregatorConfig
from tests.channels.conftest import API_KEY

pytestmark = pytest.mark.django_db(transaction=True)

GATEWAY = "at-redaction"


class RunserverThread(LiveServerThread):
    """The test server with runserver's own request handler, which writes the access log
    (the test server's default handler is quiet)."""

    def _create_server(self, connections_override=None):
        return self.server_class((self.host, self.port), WSGIRequestHandler, allow_reuse_address=False,
                                 connections_override=connections_override)


@pytest.fixture
def runserver():
    from django.contrib.staticfiles.handlers import StaticFilesHandler

    override = {}
    for conn in connections.all():
        # The in-memory SQLite test database is shared with the server thread, as pytest-django's live_server does.
        if conn.vendor == "sqlite" and conn.is_in_memory_db():
            override[conn.alias] = conn
            conn.inc_thread_sharing()
    thread = RunserverThread("127.0.0.1", StaticFilesHandler, connections_override=override, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()
    for conn in override.values():
        conn.dec_thread_sharing()


@pytest.fixture
def captured(caplog):
    """caplog, also hearing django.server (which does not propagate to the root logger)."""
    server = logging.getLogger("django.server")
    server.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    yield caplog
    server.removeHandler(caplog.handler)


def post(url, data):
    request = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_redact_secrets_keeps_the_path_and_harmless_parameters():
    line = "POST /api/callbacks/africastalking/delivery/?gateway=local-at&token=abc123&apiKey=k9&keyword=x HTTP/1.1"
    assert redact_secrets(line) == (f"POST /api/callbacks/africastalking/delivery/?gateway=local-at&token={REDACTED}"
                                    f"&apiKey={REDACTED}&keyword=x HTTP/1.1")
    assert redact_secrets("/otp/?country_code=27&otp=123456") == f"/otp/?country_code=27&otp={REDACTED}"


def test_callbacks_through_runserver_log_their_path_but_never_the_token(runserver, captured):
    Gateway.objects.create(name=GATEWAY, kind="africastalking", base_url="http://127.0.0.1:9", api_key=API_KEY)
    token = callback_token(GATEWAY)
    url = callback_url(base_url=runserver, kind="africastalking", event="delivery", gateway_name=GATEWAY)
    assert f"token={token}" in url
    # A report of a message this gateway never sent: accepted (200) and logged as an access line.
    assert post(url, {"id": "ATXid_unknown", "status": "Success", "phoneNumber": "+27820000001"}) == 200
    # A nearly right token is as secret as the right one: refused (403), logged as a warning by
    # the access log and by django.request.
    wrong = url.replace(token, token[:-4] + "0000")
    assert post(wrong, {"id": "ATXid_unknown", "status": "Success"}) == 403
    # The access line is written after the response is sent: wait for both requests' lines
    # (bounded) rather than a fixed 0.2 s, which a loaded machine can overrun.
    deadline = time.monotonic() + 30
    while sum(r.name == "django.server" for r in captured.records) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    text = captured.text
    loggers = {r.name for r in captured.records}
    assert {"django.server", "django.request"} <= loggers, loggers
    assert "/api/callbacks/africastalking/delivery/" in text
    assert f"gateway={GATEWAY}" in text and f"token={REDACTED}" in text
    assert token not in text and token[:-4] not in text
    for record in captured.records:
        assert token[:-4] not in record.getMessage()


def test_a_peer_logs_a_failed_callback_without_the_token(captured):
    # The callback receiver is down (a closed port): the peer says so, naming the path only.
    dead = callback_url(base_url="http://127.0.0.1:9", kind="africastalking", event="delivery", gateway_name=GATEWAY)
    peer = AfricasTalkingPeer(AggregatorConfig(username="lender", api_key=API_KEY, callback_delay=0.01,
                                               delivery_callback=dead)).start()
    try:
        request = urllib.request.Request(
            f"{peer.base_url}/version1/messaging", method="POST",
            data=urllib.parse.urlencode({"username": "lender", "to": "+27820000002", "message": "Hello"}).encode(),
            headers={"apiKey": API_KEY, "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 201
        deadline = time.monotonic() + 60
        while "callback to" not in captured.text and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        peer.stop()
    assert "callback to http://127.0.0.1:9/api/callbacks/africastalking/delivery/" in captured.text
    assert callback_token(GATEWAY) not in captured.text


def test_gunicorns_access_log_redacts_the_token(tmp_path):
    """Production serves through gunicorn, whose access log is not Django's: its logger class redacts too."""
    import datetime as dt
    from types import SimpleNamespace

    from gunicorn.config import Config

    from imali.core.logging import GunicornLogger

    cfg = Config()
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s q=%(q)s uri=%({raw_uri}e)s')
    logger = GunicornLogger(cfg)
    token = callback_token(GATEWAY)
    query = f"gateway={GATEWAY}&token={token}"
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": f"/api/callbacks/clickatell/status/?{query}", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/api/callbacks/clickatell/status/", "QUERY_STRING": query, "REMOTE_ADDR": "127.0.0.1"}
    logger.access(SimpleNamespace(status="200 OK", sent=20, headers=[]), SimpleNamespace(headers=[]), environ,
                  dt.timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    line = (tmp_path / "access.log").read_text()
    assert '"POST /api/callbacks/clickatell/status/?gateway=at-redaction&token=[redacted] HTTP/1.1" 200' in line
    assert f"q=gateway={GATEWAY}&token={REDACTED}" in line and token not in line
