"""uvicorn's server, able to start serving one more listening socket while it runs (the Docker bridge,
opened when Compose asks: `listeners.Listeners.open_bridge`)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn


class RunnerServer(uvicorn.Server):
    async def serve_socket(self, sock: socket.socket) -> None:
        """Accept connections on `sock` too, exactly as on the sockets the server started with."""
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
            )

        server = await asyncio.get_running_loop().create_server(
            create_protocol, sock=sock, ssl=config.ssl, backlog=config.backlog
        )
        self.servers.append(server)
