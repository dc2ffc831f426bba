"""The embedded API server as one object: store, registry, HTTP site and
kubeconfig, started and stopped together.

`KubeApiServer(state_dir).start()` loads the SQLite store, bootstraps a
fresh cluster's namespaces and CRDs on first start, serves on loopback and
writes DIR/kubeconfig pointing at itself (cluster "kovn-sandbox", no auth).
"""

from __future__ import annotations

from pathlib import Path

import structlog
from aiohttp import web

from . import tls
from .allocation import ServiceAllocator
from .background import Background
from .bootstrap import bootstrap
from .controllers import Controllers
from .handlers import Http
from .registry import Registry
from .store import Store
from .verbs import Api

log = structlog.get_logger(__name__)


KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: kovn-sandbox
  cluster:
    server: {url}{ca}
contexts:
- name: kovn-sandbox
  context:
    cluster: kovn-sandbox
    user: kovn-sandbox
    namespace: default
current-context: kovn-sandbox
users:
- name: kovn-sandbox
  user: {user}
preferences: {{}}
"""


class KubeApiServer:
    """The embedded Kubernetes API server (see the package docstring)."""

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        history_size: int = 50_000,
        bookmark_interval: float = 30.0,
        service_cidr: str = "10.96.0.0/16",
        tls: bool = False,
        event_ttl: float = 3600.0,
    ) -> None:
        self.tls = tls
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.state_dir, history_size)
        self.registry = Registry()
        self.background = Background()
        allocator = ServiceAllocator(service_cidr)
        self.api = Api(self.store, self.registry, allocator, self.background)
        self.controllers = Controllers(self.api, self.background, event_ttl)
        self.http = Http(self.api, bookmark_interval)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store.load()
        self.store.start()
        self.api.objects.resume()  # serve the stored CRDs
        self.controllers.resume()  # and catch up on what a stop interrupted
        await bootstrap(self.api.writes, self.registry)
        await self.background.settle()
        self._runner = web.AppRunner(self.http.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        ssl_context = None
        ca = ""
        if self.tls:
            ca_crt, crt, key = tls.ensure_certificates(self.state_dir, self.host)
            ssl_context = tls.server_context(crt, key)
            ca = f"\n    certificate-authority-data: {tls.ca_data(ca_crt)}"
        site = web.TCPSite(
            self._runner, self.host, self.port, backlog=1024, ssl_context=ssl_context
        )
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.url = f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"
        self.http.address = f"{self.host}:{self.port}"
        tmp = self.kubeconfig_path.with_suffix(".tmp")
        # Over HTTPS kubectl prompts for a password when the user has no
        # credentials; a token (which this server does not check) stops that.
        user = "{token: kovn-sandbox}" if self.tls else "{}"
        tmp.write_text(KUBECONFIG.format(url=self.url, ca=ca, user=user))
        tmp.replace(self.kubeconfig_path)
        log.info(
            "kubeapi serving",
            url=self.url,
            state_dir=str(self.state_dir),
            resource_version=self.store.rv,
        )

    async def stop(self) -> None:
        self.http.stop_watches()
        await self.store.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.controllers.stop()
        await self.store.close()
