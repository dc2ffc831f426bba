"""The board GetPodNetwork waits on: answers on events, deadlines, uids."""

from __future__ import annotations

import asyncio

import pytest

from services.common.errors import DeadlineExceeded, InvalidArgument
from services.controller.board import Board, Entry


def _done(entry: Entry[str]) -> bool:
    return entry.value is not None or entry.error is not None


async def test_waiter_wakes_on_result_not_on_timer() -> None:
    board: Board[str] = Board()
    waiter = asyncio.create_task(board.wait("ns/p/eth0", _done, 5.0, what="p"))
    await asyncio.sleep(0)  # let the waiter block on the event
    assert not waiter.done()
    board.ready("ns/p/eth0", "net", "uid-1")
    entry = await asyncio.wait_for(waiter, 1)
    assert entry.value == "net" and entry.uid == "uid-1"


async def test_errors_are_answers_and_deadlines_raise() -> None:
    board: Board[str] = Board()
    board.failed("k", InvalidArgument("bad", field="kovn.io/ip_address"), "u")
    entry = await board.wait("k", _done, 1.0, what="k")
    assert entry.error is not None and "kovn.io/ip_address" in str(entry.error)
    with pytest.raises(DeadlineExceeded, match="other is not ready"):
        await board.wait("other", _done, 0.05, what="other")


async def test_waiting_for_a_specific_uid_skips_an_older_answer() -> None:
    board: Board[str] = Board()
    board.ready("k", "old", "uid-1")
    waiter = asyncio.create_task(board.wait("k", lambda e: e.uid == "uid-2", 5.0, what="k"))
    await asyncio.sleep(0)
    assert not waiter.done()
    board.ready("k", "new", "uid-2")
    assert (await asyncio.wait_for(waiter, 1)).value == "new"
