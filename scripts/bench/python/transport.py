"""transport.py — one JSON POST through aiohttp or httpx, configured as a user
who wants N calls in flight at once would configure it.

Both libraries cap connections at 100 by default, which would turn the
benchmark into a test of their queues: the caps are lifted here, and a workload
that wants a cap says so with its own semaphore.
"""
import json


class AiohttpClient:
    def __init__(self):
        import aiohttp

        self._aiohttp = aiohttp
        self._session = None

    async def __aenter__(self):
        aiohttp = self._aiohttp
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self

    async def __aexit__(self, *exc):
        await self._session.close()

    async def post_json(self, url, payload, headers):
        """POSTs payload as JSON; returns (status, decoded body or None)."""
        async with self._session.post(url, data=json.dumps(payload), headers=headers) as r:
            body = await r.read()
            return r.status, (json.loads(body) if r.status == 200 else None)


class HttpxClient:
    def __init__(self):
        import httpx

        self._httpx = httpx
        self._client = None

    async def __aenter__(self):
        httpx = self._httpx
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            timeout=httpx.Timeout(None),
        )
        return self

    async def __aexit__(self, *exc):
        await self._client.aclose()

    async def post_json(self, url, payload, headers):
        r = await self._client.post(url, content=json.dumps(payload), headers=headers)
        return r.status_code, (r.json() if r.status_code == 200 else None)


def client(name):
    return {"aiohttp": AiohttpClient, "httpx": HttpxClient}[name]()
