"""Type aliases for grpc.aio that keep `mypy --strict` readable.

grpc-stubs declares the aio classes generic over request/response types;
servicers across kovn accept any message, so they use these aliases instead
of repeating `[Any, Any]` (which would also fail at runtime: the real
classes are not subscriptable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
    MethodHandler = grpc.RpcMethodHandler[Any, Any]
else:
    Context = grpc.aio.ServicerContext
    MethodHandler = grpc.RpcMethodHandler

__all__ = ["Context", "MethodHandler"]
