"""Settings are checked when they are built: a bad value is one error naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from redpool import ProducerSettings, RedisSettings, SettingError, SinkSettings, WorkerSettings
from redpool.pipeline import MAX_BATCH


@pytest.mark.parametrize(
    ("make", "setting"),
    [
        (lambda: WorkerSettings(max_batch=MAX_BATCH + 1), "max_batch"),
        (lambda: WorkerSettings(processes=0), "processes"),
        (lambda: WorkerSettings(lease=0.1), "lease"),
        (lambda: WorkerSettings(task_timeout=0), "task_timeout"),
        (lambda: WorkerSettings(max_tasks_per_child=0), "max_tasks_per_child"),
        (lambda: WorkerSettings(first_batch=2000), "first_batch"),
        (lambda: WorkerSettings(block_seconds=30), "block_seconds"),
        (lambda: ProducerSettings(batch_size=0), "batch_size"),
        (lambda: ProducerSettings(max_backlog=0), "max_backlog"),
        (lambda: SinkSettings(batch_size=MAX_BATCH + 1), "batch_size"),
        (lambda: SinkSettings(lease=9, block_seconds=4), "block_seconds"),
        (lambda: RedisSettings(wait=-1), "wait"),
        (lambda: RedisSettings(socket_timeout=1), "socket_timeout"),
    ],
)
def test_out_of_range_settings_are_refused_by_name(make: Any, setting: str) -> None:
    with pytest.raises(SettingError) as refused:
        make()
    assert refused.value.setting == setting
    assert str(refused.value).startswith(setting + " must be")


def test_defaults_are_valid() -> None:
    assert WorkerSettings().processes >= 1
    assert ProducerSettings().max_backlog is None
    assert SinkSettings().lease == 10
    assert RedisSettings.of(None).url == RedisSettings().url
    assert RedisSettings.of("redis://h:1/0").url == "redis://h:1/0"
