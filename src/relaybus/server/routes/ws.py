"""``/v1/ws``: live events over a WebSocket, and sending, acking and heartbeats
over the same socket.

Frames are JSON text. The server sends ``{"type":"ready","last_event_id":N}``
first, then ``{"type":"event","event":{...}}`` for every event the socket's
viewer may see (the same objects as the SSE stream), and answers each client
request with ``{"type":"result","ref":...,"data":...}`` or
``{"type":"error","ref":...,"status":int,"title":...,"detail":...}``; an
error never closes the socket. Client requests (``ref`` is optional, any JSON
value, echoed back):

- ``{"type":"send","to":...,"body":...,"subject"?,"channel"?,"reply_to"?,
  "priority"?,"meta"?,"claimable"?}`` → the stored Message;
- ``{"type":"ack","up_to":message_id}`` or ``{"type":"ack","ids":[...]}`` →
  ``{"marked": n}`` (read; the ones still queued are recorded delivered by
  ``stream``);
- ``{"type":"delivered","ids":[...]}`` → ``{"marked": n}``: the messages pushed
  on this socket reached the agent's session (queued → delivered, by ``stream``);
- ``{"type":"heartbeat","status"?}`` → the Agent.

Requests act as the socket's agent: the agent token's own agent, or
``?agent=ID`` for an admin token; an admin socket without ``?agent=`` can only
watch. Query: ``?since=`` (resume after an event id), ``?agent=``, ``?token=``
(for clients that cannot set an ``Authorization`` header); headers
``X-Relaybus-Workspace`` and ``X-Relaybus-Epoch`` as on REST, or ``?workspace=``
and ``?epoch=``; an ``epoch`` field on a request overrides the socket's. The
handshake is refused with the problem+json response REST would give (401, 403,
400). The server closes with 1001 at shutdown and 1013 when the client fell too
far behind (resume with ``?since=`` the last event id it got).

Requests are handled in order. Sends that queue up while one is being
stored are stored together in one transaction (``send_many``), which is what
makes a pipelined sender fast; a batch that fails is retried one by one, so
each request still gets its own result or error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnect

from ...errors import Forbidden, InvalidInput, RelayError
from ...models import AgentStatus, Priority, Via
from ...service import Service
from ...service.messages import MAX_BATCH
from ..auth import BEARER, EPOCH_HEADER, MAX_ID, WORKSPACE_HEADER, Caller, ServerContext
from ..hub import SHUTTING_DOWN, Hub, Subscription
from ..problems import relay_error_response
from .stream import viewer_of

logger = logging.getLogger(__name__)

router = APIRouter()

#: Close codes: 1001 going away (shutdown), 1013 try again later (too slow).
CLOSE_SHUTDOWN = 1001
CLOSE_TOO_SLOW = 1013
#: The subscription's end when the client closed the socket.
CLIENT_LEFT = "the client disconnected"
#: Seconds the writer waits for events in one go (the socket's own pings keep it alive).
IDLE_SECONDS = 3600.0
#: Client frames read ahead of the one being handled before the socket stops reading.
MAX_PENDING = 1000


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: Any = None
    epoch: StrictInt | None = None


class SendRequest(_Request):
    """``{"type":"send", ...}``: the body of ``POST /v1/messages`` without ``sender``."""

    type: Literal["send"]
    to: str | None = None
    body: str
    subject: str | None = None
    channel: str | None = None
    reply_to: StrictInt | None = None
    priority: Priority = Priority.NORMAL
    meta: dict[str, Any] | None = None
    claimable: bool = False

    def item(self) -> dict[str, Any]:
        """The keyword arguments of ``Service.send`` / one item of ``send_many``."""
        return self.model_dump(exclude={"type", "ref", "epoch"})


class AckRequest(_Request):
    """``{"type":"ack","up_to":id}`` or ``{"type":"ack","ids":[...]}``: mark read."""

    type: Literal["ack"]
    up_to: StrictInt | None = None
    ids: list[StrictInt] | None = None


class DeliveredRequest(_Request):
    """``{"type":"delivered","ids":[...]}``: a delivery receipt for pushed messages."""

    type: Literal["delivered"]
    ids: list[StrictInt] = Field(min_length=1, max_length=1000)


class HeartbeatRequest(_Request):
    """``{"type":"heartbeat","status"?}``: the agent is alive (and its status)."""

    type: Literal["heartbeat"]
    status: AgentStatus | None = None


ClientRequest = Annotated[
    SendRequest | AckRequest | DeliveredRequest | HeartbeatRequest, Field(discriminator="type")
]
_REQUEST: TypeAdapter[SendRequest | AckRequest | DeliveredRequest | HeartbeatRequest] = TypeAdapter(
    ClientRequest
)


@router.websocket("/v1/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    """Authenticate, subscribe, then push events and answer requests until either
    side closes (see the module docstring)."""
    context: ServerContext = websocket.app.state.context
    query, headers = websocket.query_params, websocket.headers
    try:
        bearer = await BEARER(websocket)
        token = bearer.credentials if bearer is not None else query.get("token") or None
        workspace = headers.get(WORKSPACE_HEADER) or query.get("workspace") or None
        client = websocket.client.host if websocket.client is not None else None
        caller = await context.auth.authenticate(token, workspace, client)
        actor = viewer_of(caller, query.get("agent") or None)
        since = _int_param(query.get("since"), "since")
        epoch = _int_param(headers.get(EPOCH_HEADER) or query.get("epoch"), "epoch")
    except RelayError as exc:
        await _deny(websocket, exc)
        return
    hub: Hub = websocket.app.state.hub
    service = context.service
    with hub.subscribe(caller.workspace, actor, "ws") as sub:
        await websocket.accept()
        session = _Session(websocket, hub, service, sub, caller, actor, epoch)
        await session.run(since)


class _Session:
    """One open socket: a writer (this task) pushing events, a reader task taking
    requests, and a worker task while requests are being handled."""

    def __init__(
        self,
        websocket: WebSocket,
        hub: Hub,
        service: Service,
        sub: Subscription,
        caller: Caller,
        actor: str | None,
        epoch: int | None,
    ) -> None:
        self.websocket = websocket
        self.hub = hub
        self.service = service
        self.sub = sub
        self.workspace = caller.workspace
        self.actor = actor
        self.epoch = epoch
        self._pending: deque[str | bytes] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._room = asyncio.Event()  # set when the worker has taken the pending frames

    async def run(self, since: int | None) -> None:
        reader = asyncio.create_task(self._read())
        try:
            await self._push(since)
        except (WebSocketDisconnect, OSError):
            pass  # the client went away mid-send
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if self._worker is not None:
                self._worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._worker

    async def _push(self, since: int | None) -> None:
        ws = self.websocket
        await ws.send_text(json.dumps({"type": "ready", "last_event_id": self.sub.start}))
        sent = self.sub.start if since is None else since
        async for items in self.hub.replay(self.sub, sent):
            for item in items:
                await ws.send_text(item.ws)
            sent = items[-1].id
        while True:
            batch = await self.sub.get(IDLE_SECONDS)
            if batch is None:
                break
            for item in batch:
                if item.id > sent:
                    await ws.send_text(item.ws)
                    sent = item.id
        reason = self.sub.reason or ""
        if reason != CLIENT_LEFT:
            code = CLOSE_SHUTDOWN if reason == SHUTTING_DOWN else CLOSE_TOO_SLOW
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await ws.close(code, reason[:120])

    async def _read(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                self._pending.append(data)
                if self._worker is None:
                    self._worker = asyncio.create_task(self._work())
                if len(self._pending) >= MAX_PENDING:
                    # Stop reading until the worker catches up: the client's sends
                    # then wait in TCP buffers, not in this process's memory.
                    self._room.clear()
                    await self._room.wait()
        finally:
            self.sub.close(CLIENT_LEFT)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                frames = list(self._pending)
                self._pending.clear()
                self._room.set()
                # One thread hop per batch: parsing, the service calls and the
                # replies' JSON run off the loop.
                replies = await loop.run_in_executor(None, self._handle, frames)
                for reply in replies:
                    await self.websocket.send_text(reply)
        except (WebSocketDisconnect, OSError, RuntimeError):
            self.sub.close(CLIENT_LEFT)
        finally:
            self._worker = None

    # -- in a worker thread ------------------------------------------------

    def _handle(self, frames: list[str | bytes]) -> list[str]:
        """Replies to ``frames``, in order; consecutive sends are stored together."""
        replies: list[str] = []
        sends: list[SendRequest] = []
        for frame in frames:
            ref: Any = None
            try:
                try:
                    raw = json.loads(frame)
                except (ValueError, UnicodeDecodeError):
                    raise InvalidInput("a frame is a JSON object with a type") from None
                if isinstance(raw, dict):
                    ref = raw.get("ref")
                request = _REQUEST.validate_python(raw)
            except ValidationError as exc:
                replies.extend(self._send_all(sends))
                sends = []
                replies.append(_invalid(ref, exc))
                continue
            except RelayError as exc:
                replies.extend(self._send_all(sends))
                sends = []
                replies.append(_error(ref, exc))
                continue
            if isinstance(request, SendRequest):
                sends.append(request)
                continue
            replies.extend(self._send_all(sends))
            sends = []
            replies.append(self._answer(request.ref, partial(self._other, request)))
        replies.extend(self._send_all(sends))
        return replies

    def _send_all(self, sends: list[SendRequest]) -> list[str]:
        replies: list[str] = []
        for start in range(0, len(sends), MAX_BATCH):
            chunk = sends[start : start + MAX_BATCH]
            epochs = {self._epoch(s) for s in chunk}
            if len(chunk) > 1 and len(epochs) == 1 and self.actor is not None:
                try:
                    stored = self.service.send_many(
                        self.actor,
                        [s.item() for s in chunk],
                        workspace=self.workspace,
                        epoch=epochs.pop(),
                    )
                except Exception:  # each is retried alone below, and answered
                    pass  # one of them is refused: store them one by one below
                else:
                    self.hub.publish(stored)
                    replies.extend(
                        _result(s.ref, m.model_dump(mode="json"))
                        for s, m in zip(chunk, stored, strict=True)
                    )
                    continue
            replies.extend(self._answer(s.ref, partial(self._send, s)) for s in chunk)
        return replies

    def _send(self, request: SendRequest) -> Any:
        message = self.service.send(
            self._agent(),
            workspace=self.workspace,
            epoch=self._epoch(request),
            **request.item(),
        )
        self.hub.publish((message,))
        return message.model_dump(mode="json")

    def _other(self, request: AckRequest | DeliveredRequest | HeartbeatRequest) -> Any:
        if isinstance(request, AckRequest):
            marked = self.service.mark_read(
                self._agent(),
                workspace=self.workspace,
                ids=request.ids,
                up_to=request.up_to,
                epoch=self._epoch(request),
                via=Via.STREAM,
            )
            return {"marked": marked}
        if isinstance(request, DeliveredRequest):
            marked = self.service.mark_delivered(
                self._agent(),
                request.ids,
                via=Via.STREAM,
                workspace=self.workspace,
                epoch=self._epoch(request),
            )
            return {"marked": marked}
        agent = self.service.heartbeat(
            self._agent(),
            workspace=self.workspace,
            epoch=self._epoch(request),
            status=request.status,
        )
        return agent.model_dump(mode="json")

    def _answer(self, ref: Any, call: Callable[[], Any]) -> str:
        try:
            return _result(ref, call())
        except RelayError as exc:
            return _error(ref, exc)
        except Exception as exc:  # the socket's boundary: report, keep the socket open
            logger.exception("a WebSocket request failed")
            return _frame(
                {
                    "type": "error",
                    "ref": ref,
                    "status": 500,
                    "title": "internal error",
                    "detail": f"the relay failed to handle the request ({type(exc).__name__})",
                }
            )

    def _agent(self) -> str:
        if self.actor is None:
            raise Forbidden(
                "this socket only watches: sending, acking and heartbeats act as an agent; "
                "connect with the agent's token, or as admin with ?agent=ID"
            )
        return self.actor

    def _epoch(self, request: _Request) -> int | None:
        return request.epoch if request.epoch is not None else self.epoch


def _result(ref: Any, data: Any) -> str:
    return _frame({"type": "result", "ref": ref, "data": data})


def _error(ref: Any, exc: RelayError) -> str:
    return _frame(
        {
            **exc.details,
            "type": "error",
            "ref": ref,
            "status": exc.status,
            "title": exc.title,
            "detail": exc.message,
        }
    )


def _invalid(ref: Any, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'frame'}: {e['msg']}" for e in exc.errors()
    )
    return _frame(
        {
            "type": "error",
            "ref": ref,
            "status": 422,
            "title": "unprocessable request",
            "detail": problems,
            "errors": exc.errors(include_url=False, include_input=False),
        }
    )


def _frame(doc: dict[str, Any]) -> str:
    try:
        return json.dumps(doc, separators=(",", ":"))
    except (TypeError, ValueError):  # a detail JSON cannot hold: drop the extras
        keep = ("type", "ref", "status", "title", "detail")
        return json.dumps({k: doc[k] for k in keep if k in doc}, separators=(",", ":"))


def _int_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, not {value!r}", field=name) from None
    if not 0 <= number <= MAX_ID:
        raise InvalidInput(f"{name} must be between 0 and {MAX_ID}", field=name)
    return number


async def _deny(websocket: WebSocket, exc: RelayError) -> None:
    """Refuse the handshake with the HTTP problem response REST would give (status
    ``exc.status``), or a policy-violation close where the server cannot send one."""
    try:
        await websocket.send_denial_response(relay_error_response(exc))
    except RuntimeError:
        await websocket.close(code=1008, reason=exc.message[:120])
