"""A subscription keeps one graphql-core executor for its whole life; what that
executor memoizes per message must not grow with the number of messages."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncGenerator

import strawberry

from schema.builder import MEMO_LIMIT, GatewayExecutor


@strawberry.type
class Batch:
    cursor: str


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def batches(self) -> AsyncGenerator[Batch, None]:
        for i in range(2000):
            yield Batch(cursor=str(i))


def memoized() -> int:
    return sum(type(o).__qualname__ == "CollectedFields" for o in gc.get_objects())


def test_a_long_subscription_keeps_a_bounded_memo() -> None:
    schema = strawberry.Schema(
        query=Query, subscription=Subscription, execution_context_class=GatewayExecutor
    )

    async def run() -> int:
        stream = await schema.subscribe("subscription { batches { cursor } }")
        assert not isinstance(stream, strawberry.types.ExecutionResult)
        count = 0
        async for result in stream:
            assert result.errors is None
            count += 1
        assert count == 2000
        return memoized()  # the stream, and its executor, are still alive here

    before = memoized()
    assert asyncio.run(run()) - before <= 2 * MEMO_LIMIT  # not one per message (2,000)
