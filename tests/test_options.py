"""Producer, consumer and reader options: written once, checked, and taken by keyword."""

from __future__ import annotations

import inspect
import math
import typing
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

import streamfw
from streamfw import ConfigError, MessageId
from streamfw.aio import client as aio
from streamfw.broker import Limits
from streamfw.client import Stream
from streamfw.options import (
    RENAMED,
    ConsumerOptions,
    ConsumerOptionsDict,
    ProducerOptions,
    ProducerOptionsDict,
    ReaderOptions,
    ReaderOptionsDict,
    options_from_keywords,
)

PAIRS: list[tuple[type, Any]] = [
    (ProducerOptions, ProducerOptionsDict),
    (ConsumerOptions, ConsumerOptionsDict),
    (ReaderOptions, ReaderOptionsDict),
]
CLASSES = [cls for cls, _ in PAIRS]


@pytest.fixture
def client() -> Iterator[streamfw.Client]:
    with streamfw.connect("loopback://options-tests") as c:
        yield c


@pytest.mark.parametrize(("cls", "keywords"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_each_keywords_dict_names_the_fields_of_its_class_with_their_types(
    cls: type, keywords: Any
) -> None:
    fields = typing.get_type_hints(cls)
    declared = typing.get_type_hints(keywords)
    for old, new in RENAMED.get(cls, {}).items():  # a deprecated spelling types as its new one
        assert declared.pop(old) == fields[new]
    assert declared == fields, f"{keywords.__name__} must list exactly the fields of {cls}"
    assert not keywords.__required_keys__  # every option has a default


@pytest.mark.parametrize("cls", CLASSES)
def test_options_are_keyword_only_and_every_field_is_checked(cls: type) -> None:
    with pytest.raises(TypeError):
        cls("x")
    for field in attrs.fields(cls):
        assert field.kw_only and field.validator is not None, field.name
        assert field.default is not attrs.NOTHING, field.name


@pytest.mark.parametrize(
    ("cls", "field", "bad"),
    [
        (ProducerOptions, "name", ""),
        (ProducerOptions, "name", "a\nb"),
        (ProducerOptions, "name", "x" * 201),
        (ProducerOptions, "name", 7),
        (ProducerOptions, "max_pending", 0),
        (ProducerOptions, "max_pending", True),
        (ProducerOptions, "max_pending", 1.5),
        (ProducerOptions, "send_timeout", 0),
        (ProducerOptions, "send_timeout", math.inf),
        (ProducerOptions, "send_timeout", "30"),
        (ConsumerOptions, "name", ""),
        (ConsumerOptions, "type", "round_robin"),
        (ConsumerOptions, "initial_position", "middle"),
        (ConsumerOptions, "receiver_queue_size", 0),
        (ConsumerOptions, "receiver_queue_size", 1001),
        (ConsumerOptions, "receiver_queue_size", False),
        (ConsumerOptions, "ack_timeout", -1),
        (ConsumerOptions, "ack_timeout", math.nan),
        (ConsumerOptions, "nack_delay", -0.5),
        (ConsumerOptions, "nack_delay", math.inf),
        (ReaderOptions, "start", "middle"),
        (ReaderOptions, "start", None),
        (ReaderOptions, "receiver_queue_size", 10_000),
        (ReaderOptions, "name", "\x00"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_option(
    cls: type, field: str, bad: object
) -> None:
    with pytest.raises(ConfigError, match=field):
        cls(**{field: bad})


def test_the_defaults_are_pulsars() -> None:
    assert ProducerOptions() == ProducerOptions(name=None, max_pending=1000, send_timeout=30.0)
    assert ConsumerOptions() == ConsumerOptions(
        name=None,
        type="exclusive",
        initial_position="latest",
        receiver_queue_size=1000,
        ack_timeout=None,
        nack_delay=60.0,
    )
    assert ReaderOptions() == ReaderOptions(start="latest", receiver_queue_size=1000, name=None)


def test_client_methods_do_not_repeat_the_options() -> None:
    methods: list[tuple[Callable[..., Any], type]] = [
        (stream.producer, ProducerOptions)
        for stream in (Stream, aio.Stream)  # the sync and the asyncio API alike
    ]
    methods += [(stream.consumer, ConsumerOptions) for stream in (Stream, aio.Stream)]
    methods += [(stream.reader, ReaderOptions) for stream in (Stream, aio.Stream)]
    for method, cls in methods:
        params = inspect.signature(method).parameters
        kind = {p.kind for p in params.values()}
        assert inspect.Parameter.VAR_KEYWORD in kind
        for field in attrs.fields(cls):
            if field.name in params:  # only as "not given": the class holds the default
                assert params[field.name].default is None, (method, field.name)


def test_an_unknown_option_is_named_with_the_closest_known_one(client: streamfw.Client) -> None:
    stream = client.stream("s").create()
    with pytest.raises(ConfigError, match=r"'recever_queue_size'.*'receiver_queue_size'"):
        stream.consumer("sub", recever_queue_size=5)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="'wibble'"):
        stream.producer(wibble=1)  # type: ignore[call-arg]


def test_the_client_passes_every_option_to_the_transport(client: streamfw.Client) -> None:
    stream = client.stream("s").create()
    with (
        stream.producer(name="p1", max_pending=3, send_timeout=None) as producer,
        stream.consumer("sub", name="worker-1", type="shared", receiver_queue_size=2),
    ):
        assert producer._options == ProducerOptions(name="p1", max_pending=3, send_timeout=None)
        producer.send("x")
        (consumer,) = stream.stats()["subscriptions"]["sub"]["consumers"]
        assert consumer["name"] == "worker-1"


def test_consumer_name_still_works_for_a_release_with_a_deprecation_warning(
    client: streamfw.Client,
) -> None:
    stream = client.stream("s").create()
    with pytest.warns(DeprecationWarning, match="consumer_name= is deprecated.*use name=") as got:
        consumer = stream.consumer("sub", consumer_name="old-style")
    with consumer:
        assert got[0].filename == __file__  # points at the caller, not at streamfw
        (attached,) = stream.stats()["subscriptions"]["sub"]["consumers"]
        assert attached["name"] == "old-style"
    with warnings.catch_warnings(), pytest.raises(ConfigError, match="name= alone"):
        warnings.simplefilter("ignore", DeprecationWarning)
        stream.consumer("sub", consumer_name="a", name="b")


def test_a_reader_start_is_positional_or_a_keyword_but_not_both(client: streamfw.Client) -> None:
    stream = client.stream("s").create()
    with stream.producer() as producer:
        first = producer.send("one")
    for reader in (stream.reader("earliest"), stream.reader(start="earliest")):
        with reader:
            message = reader.receive(timeout=5)
            assert message is not None and message.id == first
    with stream.reader(first) as after, stream.reader() as latest:
        assert after.receive(timeout=0.05) is None
        assert latest.receive(timeout=0.05) is None
    with pytest.raises(ConfigError, match="start given both"):
        stream.reader("earliest", start="latest")


def test_options_from_keywords_builds_the_value_the_classes_build() -> None:
    start = MessageId("s", 1, 2)
    assert options_from_keywords(ReaderOptions, {}, positional={"start": start}) == ReaderOptions(
        start=start
    )
    assert options_from_keywords(ConsumerOptions, {"nack_delay": 0}) == ConsumerOptions(
        nack_delay=0
    )


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (
            lambda bad: streamfw.connect("loopback://l", max_message_size=bad),
            "max_message_size",
        ),
        (
            lambda bad: streamfw.connect("loopback://l", max_codec_stages=bad),
            "max_codec_stages",
        ),
        (lambda bad: ProducerOptions(max_pending=bad), "max_pending"),
        (lambda bad: Limits(max_streams=bad), "max_streams"),
        (lambda bad: Limits(backlog_quota_bytes=bad), "backlog_quota_bytes"),
    ],
)
@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "5"])
def test_every_count_or_size_limit_is_checked_by_the_one_rule(
    build: Callable[[object], object], name: str, bad: object
) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must be an int of at least 1, got {bad!r}$"):
        build(bad)


@pytest.mark.parametrize("bad", ["a/b", "", "x" * 201, "é"])
def test_a_dead_letter_stream_follows_the_stream_name_rule(bad: str) -> None:
    rule = f"name {bad!r:.80} is invalid: use 1-200 characters from A-Z a-z 0-9 _ . -"
    with pytest.raises(ConfigError) as as_stream:
        streamfw.StreamRef(bad)
    with pytest.raises(ConfigError) as as_option:
        ConsumerOptions(max_redeliver_count=3, dead_letter_stream=bad)
    assert str(as_stream.value) == f"stream {rule}"
    assert str(as_option.value) == f"dead_letter_stream {rule}"
