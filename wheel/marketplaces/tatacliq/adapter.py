"""The Tata CLiQ adapter: one authenticated session per channel."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from wheel.domain import RangingItem
from wheel.marketplaces import http
from wheel.marketplaces.base import ChannelConfig, HttpConfig, PushResult
from wheel.marketplaces.errors import AuthError
from wheel.marketplaces.tatacliq import mapping, paths
from wheel.secrets import SecretNotFound, SecretStore


class TataCliqAdapter:
    marketplace = "tatacliq"

    def __init__(self, channel: ChannelConfig, http_config: HttpConfig, token: str):
        self.channel = channel
        self._timeout = http_config.timeout
        self._session = http.new_session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._secrets = (token,)

    def _url(self, path: str) -> str:
        return self.channel.base_url.rstrip("/") + path.format(channel_id=quote(self.channel.id, safe=""))

    def range_items(self, items: Sequence[RangingItem], *, request_id: str) -> PushResult:
        response = http.send(
            self._session,
            "POST",
            self._url(paths.RANGING),
            f"Tata CLiQ POST {paths.RANGING.format(channel_id=self.channel.id)}",
            json=mapping.ranging_body(items),
            headers={"X-Request-Id": request_id},
            timeout=self._timeout,
            secrets=self._secrets,
        )
        return PushResult(summary={"http_status": response.status_code})


def make_adapter(channel: ChannelConfig, http_config: HttpConfig, secrets: SecretStore) -> TataCliqAdapter:
    try:
        token = secrets.get(channel.credentials_ref)
    except SecretNotFound as exc:
        raise AuthError(str(exc)) from None
    return TataCliqAdapter(channel, http_config, token)
