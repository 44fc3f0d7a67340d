"""Sentinel URLs and ``?replicas=N`` are read before anything connects, and a bad one is one
line that never shows a password."""

from __future__ import annotations

import pytest

from redpool.connection import address, new_client, safe_url
from redpool.errors import ConfigError
from redpool.sentinel import SentinelURL
from redpool.settings import RedisSettings


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_primary_s_options() -> None:
    url = SentinelURL.parse(
        "rediss+sentinel://alice:s3cret@10.0.0.1:26379,[::1]:26380/cache/2"
        "?sentinel_password=watch&socket_keepalive=true"
    )
    assert url.sentinels == [("10.0.0.1", 26379), ("::1", 26380)]
    assert url.service == "cache"
    assert url.tls
    assert url.sentinel_auth == {"password": "watch"}
    assert url.primary == {
        "db": 2,
        "username": "alice",
        "password": "s3cret",
        "socket_keepalive": True,
    }
    assert url.shown() == "rediss+sentinel://***@10.0.0.1:26379,[::1]:26380/cache/2"


def test_a_plain_sentinel_url_is_db_0_without_tls_or_passwords() -> None:
    url = SentinelURL.parse("redis+sentinel://h:26379/mymaster")
    assert (url.tls, url.sentinel_auth, url.primary) == (False, {}, {})
    assert url.shown() == "redis+sentinel://h:26379/mymaster/0"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://:pw@h:26379", "no service name"),
        ("redis+sentinel://:pw@h:26379/", "no service name"),
        ("redis+sentinel://:pw@h:26379/svc/x", "expected /SERVICE or /SERVICE/DB"),
        ("redis+sentinel://:pw@h:26379/svc/0/1", "expected /SERVICE or /SERVICE/DB"),
        ("redis+sentinel://:pw@h/svc", "each sentinel must be HOST:PORT, not 'h'"),
        ("redis+sentinel://:pw@h:1,:2/svc", "each sentinel must be HOST:PORT, not ':2'"),
        ("redis+sentinel://:pw@h:99999/svc", "each sentinel must be HOST:PORT"),
    ],
)
def test_a_malformed_sentinel_url_is_one_line_without_its_password(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        new_client(RedisSettings(url))
    message = str(refused.value)
    assert why in message and "\n" not in message
    assert "pw" not in message and "***@" in message


def test_a_client_not_yet_connected_shows_the_sentinels_and_the_service() -> None:
    """Nothing connects before the first command: where it points comes from the URL."""
    client = new_client(RedisSettings("redis+sentinel://:pw@h1:1,h2:2/svc/3"))
    assert address(client) == "redis+sentinel://***@h1:1,h2:2/svc/3"


def test_safe_url_masks_the_sentinels_secrets_too() -> None:
    url = "redis+sentinel://u:pw@h1:1,h2:2/svc?sentinel_password=x&sentinel_username=y"
    assert safe_url(url) == (
        "redis+sentinel://***@h1:1,h2:2/svc?sentinel_password=***&sentinel_username=***"
    )


def test_replicas_come_from_the_url_and_are_taken_out_of_it() -> None:
    """redis-py would hand an option it does not know to each connection, which refuses it."""
    settings = RedisSettings("redis+sentinel://h:1/svc?replicas=2&replicas_timeout=0.25&db=1")
    assert (settings.replicas, settings.replicas_timeout) == (2, 0.25)
    assert settings.redis_url == "redis+sentinel://h:1/svc?db=1"
    plain = RedisSettings("redis://:pw@h:1/0?replicas=1")
    assert (plain.replicas, plain.replicas_timeout, plain.redis_url) == (
        1,
        1.0,
        "redis://:pw@h:1/0",
    )
    assert RedisSettings("redis://h:1/0").replicas == 0


@pytest.mark.parametrize(
    "option", ["replicas=17", "replicas=-1", "replicas=one", "replicas=", "replicas_timeout=0"]
)
def test_a_bad_replicas_option_is_one_line_without_the_url(option: str) -> None:
    with pytest.raises(ConfigError) as refused:
        RedisSettings(f"redis://:secret@h:1/0?{option}")
    message = str(refused.value)
    assert message.startswith(f"bad Redis URL option {option.split('=')[0]}=")
    assert "secret" not in message
