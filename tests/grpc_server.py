"""A real talkinghead server on a loopback port, in a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading

from talkinghead.server import RunningServer, ServerConfig, start_server


class ServerThread:
    def __init__(self, config: ServerConfig = ServerConfig(port=0)) -> None:
        self.config = config
        self.running: RunningServer | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.running = self._loop.run_until_complete(start_server(self.config))
        except BaseException as exc:   # noqa: BLE001 - reported to the test thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error
        return self

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def call(self, coro, timeout: float = 60):
        """Run a coroutine on the server's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self, grace: float | None = 1.0) -> None:
        if self.running is not None and self._loop.is_running():
            self.call(self.running.stop(grace), timeout=grace + 30 if grace else 30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self.running = None

    def __exit__(self, *exc) -> None:
        self.stop()
