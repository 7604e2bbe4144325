"""The docs page (/api/v1/docs) works where the service runs, with no internet: Swagger UI's
files come from the service itself (web/swagger_ui.py), and a real headless browser, cut off
from every network but loopback, renders every operation of the OpenAPI document."""
from __future__ import annotations

import html
import json
import socket
import subprocess
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from swagger_ui_bundle import swagger_ui_path

from helpers import TEST_SECRET, assert_error, required_tool
from reliability.reliability_harness import Gunicorn

PAGE = "/api/v1/docs"
ASSETS = f"{PAGE}/assets/{swagger_ui_path.name}/"
OPERATION_METHODS = {"get", "put", "post", "delete", "patch"}


class PageParser(HTMLParser):
    """The URLs a page refers to (`src`, `href`) and the operations Swagger UI rendered in it,
    as (METHOD, path) pairs."""

    def __init__(self, text: str):
        super().__init__()
        self.refs: list[str] = []
        self.operations: list[tuple[str, str]] = []
        self._method: str | None = None
        self._in_method = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.refs += [attrs[name] for name in ("src", "href") if attrs.get(name)]
        classes = (attrs.get("class") or "").split()
        self._in_method = "opblock-summary-method" in classes
        if "opblock-summary-path" in classes and self._method:
            self.operations.append((self._method, attrs["data-path"]))
            self._method = None

    def handle_data(self, data):
        if self._in_method:
            self._method = data.strip()
            self._in_method = False


def page_text(client) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def page_refs(client) -> list[str]:
    return PageParser(page_text(client)).refs


def test_the_page_refers_only_to_the_services_own_swagger_ui_files(client):
    assert "://" not in page_text(client)  # no URL with a host, in a tag or in the script
    refs = page_refs(client)
    assert refs
    for ref in refs:
        assert not urlsplit(ref).scheme and not urlsplit(ref).netloc, ref
        # Relative to the page, so the files are found wherever the page is served from.
        assert not ref.startswith("/"), ref
        assert urljoin(PAGE, ref).startswith(ASSETS), ref


def test_every_file_the_page_loads_is_served_without_a_token_and_cached(client):
    types = {".js": "text/javascript", ".css": "text/css"}
    for ref in page_refs(client):
        with client.get(urljoin(PAGE, ref)) as response:
            assert response.status_code == 200, ref
            assert response.mimetype == types[ref[ref.rindex("."):]], ref
            assert response.get_data() == (swagger_ui_path / ref.rpartition("/")[2]).read_bytes()
            assert response.cache_control.public and response.cache_control.immutable
            assert response.cache_control.max_age == 365 * 24 * 3600


def test_a_held_file_is_revalidated_with_a_304(client):
    with client.get(ASSETS + "swagger-ui-bundle.js") as first:
        tag = first.headers["ETag"]
    with client.get(ASSETS + "swagger-ui-bundle.js", headers={"If-None-Match": tag}) as again:
        assert again.status_code == 304
        assert again.get_data() == b""


@pytest.mark.parametrize("path", [
    ASSETS + "index.html",                 # in the package, but not one the page loads
    ASSETS + "swagger-ui-bundle.js.map",
    ASSETS,                                # no listing
    f"{PAGE}/assets/",
    f"{PAGE}/assets/swagger-ui-0.0.1/swagger-ui-bundle.js",   # another version
    ASSETS + "../../openapi.json",
    ASSETS + "..%2F__init__.py",
    ASSETS + "%2e%2e%2f%2e%2e%2f__init__.py",
    ASSETS + "..%5C__init__.py",
])
def test_anything_else_is_a_json_404(client, path):
    with client.get(path) as response:
        assert_error(response, 404)


# The real page in a real browser.

# The page is opened under a name that is not loopback, as on a factory's host: Swagger UI
# makes exceptions for localhost and 127.0.0.1 that could hide an outside request.
HOST = "pieces.test"


@pytest.fixture(scope="module")
def chromium():
    return required_tool("chromium", "Debian's chromium: make browser installs it")


@pytest.fixture(scope="module")
def service(db_url):
    server = Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=1)
    yield server
    server.close()


@pytest.fixture
def dead_end():
    """A loopback port this test holds and never listens on: a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def open_docs(chromium, port, dead_end, tmp_path) -> tuple[str, list[str]]:
    """(the DOM of the docs page once Swagger UI ran, the URLs requested for the page), with no
    network but the service's: every other request is sent to a proxy at `dead_end`, and a
    connection that would not use the proxy fails unless it is to 127.0.0.1."""
    net_log = tmp_path / "net-log.json"
    result = subprocess.run([
        chromium, "--headless", "--no-sandbox", "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--proxy-server=127.0.0.1:{dead_end}", f"--proxy-bypass-list={HOST}",
        f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={net_log}", "--virtual-time-budget=10000",
        "--dump-dom", f"http://{HOST}:{port}{PAGE}",
    ], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, page_requests(json.loads(net_log.read_text()))


def page_requests(net_log: dict) -> list[str]:
    """The URL of every request Chromium's net log shows made for a page of HOST (its
    network isolation key names the page's site), not for the browser's own services."""
    start = net_log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in net_log["events"]
            if event["type"] == start and "url" in event.get("params", {})
            and HOST in event["params"].get("network_isolation_key", "")]


def test_a_browser_with_no_network_but_the_service_renders_every_operation(
        chromium, service, dead_end, client, tmp_path):
    spec = client.get("/api/v1/openapi.json").get_json()
    expected = sorted((method.upper(), path) for path, operations in spec["paths"].items()
                      for method in operations if method in OPERATION_METHODS)
    assert expected
    summaries = [operation["summary"] for operations in spec["paths"].values()
                 for method, operation in operations.items()
                 if method in OPERATION_METHODS and "summary" in operation]
    assert "List pieces" in summaries and "Get one piece" in summaries

    dom, requested = open_docs(chromium, service.port, dead_end, tmp_path)

    origin = f"{HOST}:{service.port}"
    outside = [url for url in requested if urlsplit(url).netloc != origin]
    assert outside == [], "the page asked for something beyond the service"
    paths = {urlsplit(url).path for url in requested}
    assert {PAGE, "/api/v1/openapi.json", ASSETS + "swagger-ui-bundle.js"} <= paths, requested
    assert sorted(PageParser(dom).operations) == expected, dom[-2000:]
    for summary in summaries:
        assert f'opblock-summary-description">{html.escape(summary, quote=False)}<' in dom, \
            summary
