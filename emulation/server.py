"""The emulator process: the edge app on one port, as a CLI server or embedded in a thread."""

from __future__ import annotations

import dataclasses
import threading

from werkzeug.serving import make_server

from emulation.apigateway import ExecuteApi, execute_api_url
from emulation.awslambda import LambdaService
from emulation.config import EmulatorConfig
from emulation.credentials import CredentialRegistry
from emulation.edge import Edge
from emulation.http_handler import RequestHandler, close_open_connections
from emulation.iam import RolePropagation
from emulation.moto_bridge import MotoServices
from emulation.runners import make_runner, process
from emulation.sagemaker import records
from emulation.sagemaker.backend import SageMakerBackend
from emulation.sagemaker.provider import SageMakerProvider
from emulation.sagemaker.runtime import RuntimeProvider
from emulation.state import Persistence


class Emulator:
    """sagelocal's local AWS on one port.

    ``with Emulator(EmulatorConfig(port=0)) as emulator: ...`` runs it in a background thread on a
    free port (``emulator.url``); ``Emulator().serve_forever()`` runs it in the foreground.
    """

    def __init__(self, config: EmulatorConfig | None = None, listen_fd: int | None = None):
        """``listen_fd``: a socket already bound and listening (see ``emulation.child``)."""
        self.config = config or EmulatorConfig()
        self._listen_fd = listen_fd
        self.credentials = CredentialRegistry(
            self.config.account_id, self.config.access_key_id, self.config.secret_access_key
        )
        self.persistence = (
            Persistence(self.config.data_dir, self.config.account_id) if self.config.persist else None
        )
        self.moto = MotoServices(self.config.account_id, self.persistence)
        self.sagemaker = SageMakerBackend(
            self.config, self.moto, make_runner(self.config), endpoint_url=lambda: self.url
        )
        self.awslambda = LambdaService(self.config, self.moto, endpoint_url=lambda: self.url)
        self.apigateway = ExecuteApi(self.config, self.awslambda)
        sagemaker_api = SageMakerProvider(self.sagemaker).handle
        if self.persistence is not None:
            self.persistence.register(
                "sagemaker",
                capture=lambda: records.capture(self.sagemaker),
                restore=lambda saved: records.restore(self.sagemaker, saved),
                polled=True,
            )
            self.persistence.load()
            self.persistence.start()
            sagemaker_api = self.persistence.saving("sagemaker", sagemaker_api)
        self.edge = Edge(
            self.config,
            self.credentials,
            # Lambda's control plane is moto's with Pending/Active added; a role too new to assume
            # is refused in front of it.
            moto_app=RolePropagation.from_config(self.config).lambda_gate(
                self.awslambda.control_plane(self.moto)
            ),
            sagemaker=sagemaker_api,
            sagemaker_runtime=RuntimeProvider(self.sagemaker).handle,
            lambda_invoke=self.awslambda.handle,
            execute_api=self.apigateway.handle,
        )
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self.config.port}"

    def execute_api_url(self, api_id: str, stage: str) -> str:
        return execute_api_url(self.url, api_id, stage)

    def bind(self) -> Emulator:
        """Listen on the configured port (port 0: a free one, then in ``url``); serving starts later."""
        self._server = make_server(
            self.config.host,
            self.config.port,
            self.edge,
            threaded=True,
            request_handler=RequestHandler,
            fd=self._listen_fd,
        )
        self._server.daemon_threads = True
        # port 0 means "any free port": remember the one the OS gave us.
        self.config = dataclasses.replace(self.config, port=self._server.server_address[1])
        if isinstance(self.sagemaker.runner, process.ProcessRunner):
            process.warm_up_in_background()  # the zygote's imports, ahead of the first job
        return self

    def start(self) -> Emulator:
        self.bind()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sagelocal-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C); then stop every container and worker."""
        if self._server is None:
            self.bind()
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self.shutdown_workloads()

    def shutdown_workloads(self) -> None:
        if self.persistence is not None:
            self.persistence.close()  # first: how jobs end while being killed is not their record
        self.sagemaker.shutdown()
        self.awslambda.shutdown()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            close_open_connections(self._server)
        if self._thread is not None:
            self._thread.join(5)
        self.shutdown_workloads()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
